"""Prometheus metrics of the operator itself: API calls by verb and kind, reconcile results, queue size."""

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import REGISTRY, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from streamguard.operator.controller import Controller


class OperatorCollector(Collector):
    def __init__(self, controller: "Controller") -> None:
        self._controller = controller

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        calls = CounterMetricFamily(
            "streamguard_operator_api_requests",
            "Kubernetes API requests made by the operator.",
            labels=["verb", "kind"],
        )
        for (verb, kind), count in sorted(self._controller.context.kube.calls.items()):
            calls.add_metric([verb, kind], count)
        yield calls
        results = CounterMetricFamily(
            "streamguard_operator_reconciles", "Reconciles by result (ok, retry, error).", labels=["result"]
        )
        for result, count in sorted(self._controller.results.items()):
            results.add_metric([result], count)
        yield results
        registry_calls = CounterMetricFamily(
            "streamguard_operator_registry_requests",
            "Schema Registry requests made by the operator, by operation.",
            labels=["operation"],
        )
        registry = self._controller.context.registry
        for operation, count in sorted((registry.calls if registry else {}).items()):
            registry_calls.add_metric([operation], count)
        yield registry_calls
        objects = GaugeMetricFamily("streamguard_operator_objects", "Custom resources the operator tracks.")
        objects.add_metric([], len(self._controller.bodies))
        yield objects
        idle = GaugeMetricFamily("streamguard_operator_idle", "1 when no reconcile is queued or running.")
        idle.add_metric([], 1.0 if self._controller.idle else 0.0)
        yield idle


def install(controller: "Controller", port: int, address: str = "0.0.0.0") -> None:
    REGISTRY.register(OperatorCollector(controller))
    start_http_server(port, addr=address)
