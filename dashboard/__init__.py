"""Streamlit dashboard: the entry script (``app.py``), caching and UI components."""
