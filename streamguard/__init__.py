"""StreamGuard: a Kubernetes operator for real-time ML feature pipelines."""

__version__ = "0.1.0"
