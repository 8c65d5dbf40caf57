"""The FinServe worked example: sample data and its 22 features."""
