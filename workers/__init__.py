"""Ray workers: every Ray call of the project lives in this package."""
