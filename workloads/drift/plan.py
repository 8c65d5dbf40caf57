"""What one drift run computes, derived from a ``DriftJob`` (pure)."""

from dataclasses import dataclass

from streamguard.api.featureview import FeatureViewSpec
from streamguard.jobspec import DriftJob
from streamguard.workloads.drift.errors import DriftInputError

NUMERIC_TYPES = frozenset({"INT64", "INT32", "FLOAT64", "FLOAT32"})


@dataclass(frozen=True)
class DriftPlan:
    namespace: str
    monitor: str
    view: str
    generation: int
    numerical: tuple[str, ...]
    categorical: tuple[str, ...]
    ks_features: tuple[str, ...]
    """Tested with Kolmogorov-Smirnov instead of PSI."""
    psi_threshold: float
    ks_p_value: float
    drift_share: float

    @property
    def features(self) -> tuple[str, ...]:
        return self.numerical + self.categorical

    @property
    def psi_features(self) -> tuple[str, ...]:
        return tuple(f for f in self.features if f not in self.ks_features)

    @property
    def ref(self) -> str:
        """How logs and messages name the monitor."""
        return f"DriftMonitor {self.namespace}/{self.monitor}"


def _watched(spec_features: list[str], view: FeatureViewSpec) -> list[str]:
    if spec_features:
        return spec_features
    return [f.name for f in view.features if f.dtype in NUMERIC_TYPES]


def plan(job: DriftJob) -> DriftPlan:
    """The features to test and how; a feature the view does not declare is a ``FeatureUnknown`` error."""
    spec = job.monitor
    dtypes = {f.name: f.dtype for f in job.view.features}
    features = _watched(spec.features, job.view)
    if not features:
        raise DriftInputError(
            "NoFeatures", "spec.features", f"FeatureView {job.view_name} has no numeric feature to watch"
        )
    for field, names in (("spec.features", features), ("spec.ksFeatures", spec.ks_features)):
        unknown = [n for n in names if n not in dtypes]
        if unknown:
            raise DriftInputError(
                "FeatureUnknown",
                field,
                f"{', '.join(unknown)} not declared by FeatureView {job.view_name}",
            )
    outside = [n for n in spec.ks_features if n not in features]
    if outside:
        raise DriftInputError(
            "FeatureUnknown", "spec.ksFeatures", f"{', '.join(outside)} not among the watched features"
        )
    non_numeric_ks = [n for n in spec.ks_features if dtypes[n] not in NUMERIC_TYPES]
    if non_numeric_ks:
        raise DriftInputError(
            "FeatureNotNumeric",
            "spec.ksFeatures",
            f"the KS test needs numeric features; {', '.join(non_numeric_ks)} are not",
        )
    return DriftPlan(
        namespace=job.namespace,
        monitor=job.name,
        view=job.view_name,
        generation=job.generation,
        numerical=tuple(f for f in features if dtypes[f] in NUMERIC_TYPES),
        categorical=tuple(f for f in features if dtypes[f] not in NUMERIC_TYPES),
        ks_features=tuple(spec.ks_features),
        psi_threshold=spec.thresholds.psi,
        ks_p_value=spec.thresholds.ks_p_value,
        drift_share=spec.thresholds.drift_share,
    )
