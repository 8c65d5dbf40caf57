"""The StreamGuard API (group ``streamguard.dev``, version ``v1alpha1``), written once as pydantic models.

The CRD manifests in ``crds/`` are generated from these models by :mod:`streamguard.api.crdgen`.
"""

from streamguard.api.common import API_VERSION, GROUP, VERSION, Condition
from streamguard.api.driftmonitor import DriftMonitor, DriftMonitorSpec, DriftMonitorStatus
from streamguard.api.featureview import FeatureView, FeatureViewSpec, FeatureViewStatus
from streamguard.api.streamingwindow import StreamingWindow, StreamingWindowSpec, StreamingWindowStatus

__all__ = [
    "API_VERSION",
    "GROUP",
    "VERSION",
    "Condition",
    "DriftMonitor",
    "DriftMonitorSpec",
    "DriftMonitorStatus",
    "FeatureView",
    "FeatureViewSpec",
    "FeatureViewStatus",
    "StreamingWindow",
    "StreamingWindowSpec",
    "StreamingWindowStatus",
]
