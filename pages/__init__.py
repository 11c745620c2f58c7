"""Dashboard pages: one module per page, each a thin ``render()`` function."""
