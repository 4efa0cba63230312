"""The engine: data, training, strategies, search loop, store, export, transfer and the CLI."""
