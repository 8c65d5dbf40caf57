"""The streaming job a StreamingWindow's Deployment runs (``streamguard workload stream``)."""
