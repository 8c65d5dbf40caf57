"""The materialization workload: a FeatureView's Parquet source -> Redis in Feast's layout, incrementally."""
