"""Helpers of the node tests: pods pinned to the stack's node, and the image sizes reported (the images
themselves are session fixtures of tests/conftest.py)."""

from typing import Any

from streamguard.devstack import node

IMAGE_SIZE = "image size"
"""The ``user_properties`` key under which a test records an image's uncompressed size (reported below)."""


def on_node(pod: dict[str, Any]) -> dict[str, Any]:
    """``pod`` pinned to the stack's node (its host holds the files the tests mount)."""
    pod["spec"]["nodeSelector"] = {"kubernetes.io/hostname": node.NODE_NAME}
    return pod


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Report the image sizes the budget tests measured, whatever the verbosity."""
    sizes = [value for report in terminalreporter.stats.get("passed", []) + terminalreporter.stats.get("failed", [])
             for key, value in getattr(report, "user_properties", []) if key == IMAGE_SIZE]
    if sizes:
        terminalreporter.section("image sizes (uncompressed)")
        for line in sizes:
            terminalreporter.write_line(str(line))
