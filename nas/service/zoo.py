"""The zoo and the published reference cells, with their sizes at CIFAR size (3x32x32)."""

from __future__ import annotations

from functools import lru_cache

from nas.architectures import all_architectures
from searchspace.complexity import count_flops, count_parameters


@lru_cache(maxsize=8)
def listing(cells: int = 2, channels: int = 16) -> tuple[dict, ...]:
    """One row per architecture: name, kind, parameters and multiply-adds for 10 classes
    (`cells` and `channels` size the reference cells' networks)."""
    rows = []
    for architecture in all_architectures():
        model = architecture.build(num_classes=10, in_channels=3, input_size=32, cells=cells,
                                   channels=channels)
        rows.append({"name": architecture.name, "kind": architecture.kind,
                     "params": count_parameters(model), "flops": count_flops(model, (3, 32, 32))})
    return tuple(rows)
