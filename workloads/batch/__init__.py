"""Spark batch jobs: FinServe's batch features and the offline twin of every StreamingWindow."""
