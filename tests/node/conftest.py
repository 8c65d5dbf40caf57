"""Fixtures of the node tests: the project's images, built from the Dockerfile and put on the stack's node."""

from pathlib import Path
from typing import Any

import pytest

from streamguard.devstack import image, node
from streamguard.devstack.endpoints import Endpoints

IMAGE_SIZE = "image size"
"""The ``user_properties`` key under which a test records an image's uncompressed size (reported below)."""


@pytest.fixture(scope="session")
def built_images() -> image.ProjectImages:
    """The images of the current sources (`streamguard dev image`: cached by digest, rebuilt when they change)."""
    return image.build()


@pytest.fixture(scope="session")
def project_images(stack: Endpoints, built_images: image.ProjectImages) -> image.ProjectImages:
    """The images, imported into the stack's node."""
    image.put_on_node(built_images, Path(stack.run_dir))
    return built_images


def on_node(pod: dict[str, Any]) -> dict[str, Any]:
    """``pod`` placed on the real node: it tolerates the node's taint and selects it."""
    spec = pod["spec"]
    spec.setdefault("tolerations", []).append({"key": node.TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"})
    spec["nodeSelector"] = {"kubernetes.io/hostname": node.NODE_NAME}
    return pod


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Report the image sizes the budget tests measured, whatever the verbosity."""
    sizes = [value for report in terminalreporter.stats.get("passed", []) + terminalreporter.stats.get("failed", [])
             for key, value in getattr(report, "user_properties", []) if key == IMAGE_SIZE]
    if sizes:
        terminalreporter.section("image sizes (uncompressed)")
        for line in sizes:
            terminalreporter.write_line(str(line))
