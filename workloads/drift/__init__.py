"""The drift exporter a DriftMonitor's Deployment runs.

Once at start and then every ``spec.interval`` it loads the reference slice and the current slice of
Parquet data, runs Evidently (PSI through ``DataDriftPreset``, Kolmogorov-Smirnov through ``ValueDrift``
for ``spec.ksFeatures``), publishes the scores as Prometheus gauges and writes the result into the
DriftMonitor's status. See ``README.md`` beside this file for the choice of current window.
"""
