"""kopf wiring: watch the three kinds and the children they own, feed the :class:`Controller`.

Only ``@kopf.on.event`` handlers are used: kopf adds no finalizers and writes no progress annotations,
so the operator's own writes are exactly the children, the status and its two finalizers (registry subject,
Feast registry).
"""

import logging
from typing import Any

import kopf

from streamguard.api.common import GROUP, VERSION
from streamguard.api.kinds import PLURALS
from streamguard.clientsecurity import RegistrySecurity
from streamguard.contracts.registry import AsyncSchemaRegistry
from streamguard.kubeclient import load_configuration
from streamguard.operator.controller import Controller
from streamguard.operator.feastregistry import FeastRegistry
from streamguard.operator.kube import Kube
from streamguard.operator.metrics import install as install_metrics
from streamguard.operator.reconcile import Context
from streamguard.operator.render.common import MANAGED_BY
from streamguard.operator.settings import OperatorSettings
from streamguard.operator.topics import Topics

CHILDREN = (
    ("", "v1", "configmaps"),
    ("", "v1", "services"),
    ("", "v1", "persistentvolumeclaims"),
    ("", "v1", "serviceaccounts"),
    ("rbac.authorization.k8s.io", "v1", "roles"),
    ("rbac.authorization.k8s.io", "v1", "rolebindings"),
    ("apps", "v1", "deployments"),
    ("batch", "v1", "cronjobs"),
)


def build_registry(
    settings: OperatorSettings, kubeconfig: str | None = None, metrics_port: int | None = None
) -> kopf.OperatorRegistry:
    """A kopf registry whose startup creates the controller and whose event handlers feed it."""
    registry = kopf.OperatorRegistry()
    state: dict[str, Controller] = {}

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.posting.level = logging.WARNING
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        settings.networking.request_timeout = 60
        context = Context(
            kube=Kube(load_configuration(kubeconfig)),
            settings=operator_settings,
            registry=AsyncSchemaRegistry(
                operator_settings.registry_for_operator(),
                operator_settings.registry_timeout_seconds,
                security=RegistrySecurity.from_env(),
            )
            if operator_settings.registry_for_operator()
            else None,
            topics=Topics(
                operator_settings.kafka_for_operator(),
                operator_settings.kafka_timeout_seconds,
                security=operator_settings.kafka_security_for_operator(),
            )
            if operator_settings.kafka_for_operator()
            else None,
            feast_registry=FeastRegistry(operator_settings.feast_registry)
            if operator_settings.feast_registry
            else None,
        )
        controller = Controller(context, workers=operator_settings.workers)
        controller.start()
        state["controller"] = controller
        if metrics_port:
            install_metrics(controller, metrics_port)

    operator_settings = settings

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        """kopf uses the same credentials as the operator's own client (kubeconfig or in-cluster)."""
        configuration = load_configuration(kubeconfig)
        bearer: dict[str, Any] = dict(configuration.auth_settings().get("BearerToken") or {})
        scheme, _space, token = str(bearer.get("value") or "").partition(" ")
        return kopf.ConnectionInfo(
            server=configuration.host,
            ca_path=configuration.ssl_ca_cert or None,
            insecure=not configuration.verify_ssl,
            certificate_path=configuration.cert_file or None,
            private_key_path=configuration.key_file or None,
            scheme=scheme or None,
            token=token or None,
        )

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        controller = state.pop("controller", None)
        if controller is not None:
            await controller.stop()
            await controller.context.kube.close()
            if controller.context.registry is not None:
                await controller.context.registry.close()

    @kopf.on.probe(id="queue", registry=registry)
    def queue(**_: Any) -> dict[str, int]:
        controller = state.get("controller")
        if controller is None:
            return {}
        return {"objects": len(controller.bodies), "writes": controller.context.kube.writes}

    for plural in PLURALS.values():

        @kopf.on.event(GROUP, VERSION, plural, registry=registry)
        async def on_resource(event: kopf.RawEvent, **_: Any) -> None:
            controller = state.get("controller")
            if controller is not None:
                controller.observe(event["type"], dict(event["object"]))

    for group, version, plural in CHILDREN:

        @kopf.on.event(group, version, plural, labels={"app.kubernetes.io/managed-by": MANAGED_BY}, registry=registry)
        async def on_child(event: kopf.RawEvent, **_: Any) -> None:
            controller = state.get("controller")
            if controller is not None:
                controller.observe_child(dict(event["object"]))

    return registry
