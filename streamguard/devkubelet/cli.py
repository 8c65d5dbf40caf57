"""``streamguard demo kubelet``: run devkubelet in the foreground (DEVELOPMENT ONLY)."""

import logging
import signal
import threading
from pathlib import Path
from types import FrameType

import click

from streamguard.devkubelet import NODE_NAME, PART_OF_SELECTOR
from streamguard.devkubelet.kubelet import Config, Kubelet


@click.command("kubelet")
@click.option("--kubeconfig", envvar="KUBECONFIG", required=True, help="Admin kubeconfig of the dev cluster.")
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Pod logs go to <run-dir>/pods/<namespace>_<pod>.log.")
@click.option("--node-name", default=NODE_NAME, show_default=True)
@click.option("--namespace", "namespaces", multiple=True, help="Only pods in this namespace (repeatable).")
@click.option("--selector", default=PART_OF_SELECTOR, show_default=True, help="Label selector of pods to run.")
@click.option("--workdir", type=click.Path(file_okay=False), default=".", show_default=True,
              help="Working directory of containers that set no workingDir.")
def command(kubeconfig: str, run_dir: Path, node_name: str, namespaces: tuple[str, ...], selector: str,
            workdir: str) -> None:
    """A DEVELOPMENT-ONLY kubelet: runs the pods of StreamGuard's Deployments and Jobs as local processes.

    It registers the node NODE_NAME, binds matching Pending pods to it and reports their status, events
    and restarts through the API. Nothing is isolated; never use it outside a local dev cluster."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stop = threading.Event()

    def on_signal(_number: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    config = Config(kubeconfig=kubeconfig, run_dir=run_dir.resolve(), node_name=node_name, namespaces=namespaces,
                    selector=selector, workdir=str(Path(workdir).resolve()))
    Kubelet(config).run(stop)
