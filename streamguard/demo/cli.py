"""``streamguard demo``: the FinServe spine end to end on this machine (DEVELOPMENT ONLY)."""

import json
import subprocess
import time
from pathlib import Path
from typing import cast

import click

from streamguard.demo.stores import STORES, StoreChoice


@click.group("demo")
def command() -> None:
    """Run the FinServe fraud-feature spine on this machine: local stack with its node (kubelet, containerd),
    the project images, CRDs, sample data, the operator and the FinServe resources' workloads (containers on
    the node), a transaction stream with fraud bursts and the feature server on 127.0.0.1."""


@command.command()
@click.option("--namespace", default="finserve", show_default=True)
@click.option("--burst-every", default=60.0, show_default=True, help="Seconds between the producer's fraud bursts.")
@click.option("--timeout", default=300.0, show_default=True,
              help="Seconds to wait for features to be live; then it stops and names what blocks.")
@click.option("--store", type=click.Choice(STORES), default="server", show_default=True,
              help="The online store: the stack's Redis, or its 3-master Redis Cluster.")
def up(namespace: str, burst_every: float, timeout: float, store: str) -> None:
    """Bring everything up and wait until features are live (harmless when already up)."""
    from streamguard.demo.run import Demo
    from streamguard.devstack.provision import ProvisionError
    from streamguard.devstack.supervisor import StartError

    try:
        Demo(namespace=namespace, burst_every=burst_every, timeout=timeout, echo=click.echo,
             store=cast("StoreChoice", store)).up()
    except (ProvisionError, StartError, RuntimeError, TimeoutError) as error:
        raise click.ClickException(f"{error}\n(`streamguard demo status` shows what runs; "
                                   "`streamguard demo down` stops it)") from error


@command.command()
@click.option("--purge", is_flag=True, help="Also delete the demo's resources, namespace, pods and Feast registry "
                                            "file (for a shared stack).")
def down(purge: bool) -> None:
    """Stop what `demo up` started on the host: producer and serving's port-forward, and the stack (its node
    and every pod, the operator's too) if the demo started it. On a stack it did not start, the pods (the
    operator's too) keep running unless --purge."""
    from streamguard.demo.run import Demo

    try:
        stopped = Demo().down(purge=purge)
    except RuntimeError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


@command.command()
def status() -> None:
    """Host processes, the operator's Deployment, pods on the node (phase, readiness, restarts) and resource
    conditions."""
    from streamguard.demo import live
    from streamguard.demo.manifests import operator_release
    from streamguard.demo.run import Demo, kube_for, load_state

    try:
        state = load_state()
    except FileNotFoundError as error:
        raise click.ClickException(str(error)) from error
    for name, pid in Demo().processes().items():
        click.echo(f"{name:12} {'running pid ' + str(pid) if pid else 'stopped'}")
    kube, _ = kube_for(state)
    available, line = live.operator_state(kube, state.namespace, operator_release(state.namespace))
    click.echo(f"{'operator':12} {'available' if available else 'NOT available'}: {line}")
    pods = kube.request("GET", f"/api/v1/namespaces/{state.namespace}/pods").get("items", [])
    click.echo(f"\npods in {state.namespace} (node {state.node_name}):")
    for pod in pods:
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        ready_count = sum(1 for s in statuses if s.get("ready"))
        restarts = sum(int(s.get("restartCount", 0)) for s in statuses)
        click.echo(f"  {pod['metadata']['name']:50} {pod.get('status', {}).get('phase', '?'):10} "
                   f"ready {ready_count}/{len(statuses)} restarts {restarts} {pod['spec'].get('nodeName', '')}")
    click.echo("\nresources:")
    for plural, items in live.resources(kube, state.namespace).items():
        for item in items:
            cond = live.condition(item, "Ready") or {}
            click.echo(f"  {plural[:-1]}/{item['metadata']['name']:30} Ready={cond.get('status', '?'):7} "
                       f"{cond.get('reason', '')}")
    blockers = live.blocking(kube, state.namespace)
    click.echo("\nblocking conditions:" if blockers else "\nblocking conditions: none")
    for line in blockers:
        click.echo(f"  {line}")
    ok, why = live.readyz(state.serving_url)
    click.echo(f"\nserving {state.serving_url}: readyz {'ok' if ok else 'NOT ready: ' + str(why)[:300]}")


@command.command()
@click.option("--account", default="A000042", show_default=True)
@click.option("--count", default=20, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--watch", "watch_seconds", default=30.0, show_default=True,
              help="Seconds to poll the served window features afterwards (0: don't).")
def burst(account: str, count: int, watch_seconds: float) -> None:
    """Send a fraud burst (COUNT high-amount e-commerce transactions) on ACCOUNT now and watch its served
    window features jump."""
    from streamguard.demo import live
    from streamguard.demo.burst import send_burst
    from streamguard.demo.run import kube_for, load_state

    state = load_state()
    _, endpoints = kube_for(state)
    before = live.served_vector(state.serving_url, account)
    click.echo(f"before: {json.dumps(before)}")
    send_burst(endpoints, state.topic, state.subject, account, count)
    click.echo(f"sent {count} fraud transactions for {account} to {state.topic}")
    deadline = time.monotonic() + watch_seconds
    while time.monotonic() < deadline:
        after = live.served_vector(state.serving_url, account)
        if after != before:
            click.echo(f"after:  {json.dumps(after)}")
            before = after
            if after and (after.get("txn_count_1m") or 0) >= count:
                return
        time.sleep(1)


@command.command()
@click.argument("pod")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new output.")
@click.option("--tail", default=100, show_default=True, help="Lines to show first (-1: all).")
def logs(pod: str, follow: bool, tail: int) -> None:
    """Print a pod's output through the apiserver (POD may be a prefix of the pod name, e.g.
    account-activity-stream or streamguard-finserve-operator): `kubectl logs` of the newest matching pod."""
    from streamguard.demo.run import kube_for, load_state

    state = load_state()
    kube, endpoints = kube_for(state)
    pods = kube.request("GET", f"/api/v1/namespaces/{state.namespace}/pods").get("items", [])
    matches = sorted((p for p in pods if p["metadata"]["name"].startswith(pod)),
                     key=lambda p: p["metadata"]["creationTimestamp"])
    if not matches:
        raise click.ClickException(f"no pod named {pod}* in namespace {state.namespace}")
    argv = [str(Path(endpoints.bin_dir) / "kubectl"), f"--kubeconfig={endpoints.kubeconfig}", "logs", "-n",
            state.namespace, matches[-1]["metadata"]["name"], f"--tail={tail}", *(["-f"] if follow else [])]
    raise SystemExit(subprocess.run(argv, check=False).returncode)
