"""HTTP API (FastAPI + uvicorn). Not built yet: see the API issue; the core is ready for it."""
