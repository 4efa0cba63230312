"""FastAPI server: REST API, dashboard and auth. Built on `nas`; nothing imports it but `nas serve`."""
