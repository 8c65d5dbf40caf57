"""The FinServe demo: everything from a bare machine to live features (development only)."""
