"""DriftMonitor -> job ConfigMap + drift exporter Deployment + metrics Service (+ PrometheusRule)."""

from streamguard.alerts import render_monitor_rules
from streamguard.api.driftmonitor import DriftMonitorSpec
from streamguard.api.featureview import FeatureViewSpec
from streamguard.jobspec import DriftJob
from streamguard.operator.render.common import (
    IDENTITY_KINDS,
    Manifest,
    Owner,
    container,
    job_config_map,
    metadata,
    metrics_port,
    metrics_probe,
    metrics_service,
    object_store_env,
    single_pod_deployment,
    volumes,
    workload_identity,
)
from streamguard.operator.render.streamingwindow import Problem
from streamguard.operator.settings import OperatorSettings

COMPONENT = "drift-exporter"
METRICS_PORT = 9109
CHILD_KINDS = ("ConfigMap", "Deployment", "Service", *IDENTITY_KINDS, "PrometheusRule")
NUMERIC = ("INT64", "INT32", "FLOAT64", "FLOAT32")


def child_names(owner: Owner) -> dict[str, str]:
    return {
        "ConfigMap": f"{owner.name}-drift",
        "Deployment": f"{owner.name}-drift",
        "Service": f"{owner.name}-drift-metrics",
        "PrometheusRule": f"{owner.name}-drift",
    }


def check(spec: DriftMonitorSpec, view_name: str, view: FeatureViewSpec | None) -> Problem | None:
    if view is None:
        return Problem("FeatureViewNotFound", f"spec.featureView: FeatureView {view_name!r} does not exist")
    dtypes = {feature.name: feature.dtype for feature in view.features}
    for field, names in (("spec.features", spec.features), ("spec.ksFeatures", spec.ks_features)):
        for index, name in enumerate(names):
            if name not in dtypes:
                return Problem(
                    "FeatureNotInView", f"{field}[{index}]: {name!r} is not a feature of FeatureView {view_name!r}"
                )
    for index, name in enumerate(spec.ks_features):
        if dtypes[name] not in NUMERIC:
            return Problem(
                "FeatureNotNumeric",
                f"spec.ksFeatures[{index}]: {name!r} is {dtypes[name]}; the KS test needs a numeric feature "
                "(categorical features are measured with PSI)",
            )
    return None


def job(owner: Owner, spec: DriftMonitorSpec, view: FeatureViewSpec) -> DriftJob:
    return DriftJob(
        namespace=owner.namespace,
        name=owner.name,
        generation=owner.generation,
        monitor=spec,
        view_name=spec.feature_view,
        view=view,
        metrics_port=METRICS_PORT,
    )


def prometheus_rule(owner: Owner, spec: DriftMonitorSpec) -> Manifest:
    """The monitor's alert rules (shared with the chart's rules file) as a PrometheusRule."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": metadata(owner, COMPONENT, child_names(owner)["PrometheusRule"]),
        "spec": {"groups": render_monitor_rules(owner.namespace, owner.name, spec)},
    }


def render(
    owner: Owner,
    spec: DriftMonitorSpec,
    view: FeatureViewSpec,
    settings: OperatorSettings,
    prometheus_rules: bool,
) -> list[Manifest]:
    """The desired children; the PrometheusRule only when the cluster serves that kind."""
    names = child_names(owner)
    job_json = job(owner, spec, view).model_dump_json(by_alias=True, exclude_none=True, indent=2)
    store_env = object_store_env(settings, spec.secret_ref, [spec.reference.path, spec.current.path])
    exporter = container(
        settings, "drift-exporter", "drift", store_env, settings.drift_resources, ports=metrics_port(METRICS_PORT)
    )
    exporter["readinessProbe"] = metrics_probe("metrics", settings)
    children: list[Manifest] = [
        *workload_identity(owner, COMPONENT, names["Deployment"]),
        job_config_map(owner, COMPONENT, names["ConfigMap"], job_json),
        single_pod_deployment(
            owner, COMPONENT, names["Deployment"], settings, exporter, volumes(names["ConfigMap"]), job_json
        ),
        metrics_service(owner, COMPONENT, names["Service"], METRICS_PORT),
    ]
    if prometheus_rules:
        children.append(prometheus_rule(owner, spec))
    return children
