"""FastAPI server: REST API, dashboard, auth. Built on `nas`; only `nas serve` imports it."""
