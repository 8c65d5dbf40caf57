"""Fixtures of the node tests: the project's image, built from the Dockerfile and put on the stack's node."""

from pathlib import Path
from typing import Any

import pytest

from streamguard.devstack import image, node
from streamguard.devstack.endpoints import Endpoints


@pytest.fixture(scope="session")
def project_image(stack: Endpoints) -> image.BuiltImage:
    """The image of the current sources (`streamguard dev image`: cached by digest, rebuilt when they change)."""
    built = image.build()
    image.put_on_node(built, Path(stack.run_dir))
    return built


def on_node(pod: dict[str, Any]) -> dict[str, Any]:
    """``pod`` placed on the real node: it tolerates the node's taint and selects it."""
    spec = pod["spec"]
    spec.setdefault("tolerations", []).append({"key": node.TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"})
    spec["nodeSelector"] = {"kubernetes.io/hostname": node.NODE_NAME}
    return pod
