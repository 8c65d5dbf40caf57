"""The work queue between watch events and reconcilers: de-duplication, dependents, retries, freshness."""

import asyncio
from typing import Any, cast

from streamguard.operator.controller import Controller
from streamguard.operator.kube import Kube
from streamguard.operator.reconcile import Context
from streamguard.operator.settings import OperatorSettings


def body(kind: str, name: str, version: int, view: str | None = None) -> dict[str, Any]:
    spec = {"featureView": view} if view else {}
    return {"kind": kind, "metadata": {"namespace": "ns", "name": name, "resourceVersion": str(version)}, "spec": spec}


def controller(calls: list[tuple[str, str]], fail_first: int = 0, resync: float = 300.0) -> Controller:
    failures = {"left": fail_first}

    async def reconcile(context: Context, obj: dict[str, Any]) -> float | None:
        await asyncio.sleep(0.01)
        calls.append((obj["kind"], obj["metadata"]["resourceVersion"]))
        if failures["left"]:
            failures["left"] -= 1
            raise RuntimeError("boom")
        return None

    context = Context(kube=cast(Kube, None), settings=OperatorSettings(resync_seconds=resync))
    reconcilers = dict.fromkeys(("FeatureView", "StreamingWindow", "DriftMonitor"), reconcile)
    return Controller(context, workers=2, reconcilers=reconcilers)


async def settle(ctrl: Controller) -> None:
    for _ in range(200):
        await asyncio.sleep(0.02)
        if ctrl.idle:
            return
    raise AssertionError("controller did not settle")


def test_bursts_collapse_to_the_latest_body_and_views_requeue_dependents() -> None:
    async def scenario() -> list[tuple[str, str]]:
        calls: list[tuple[str, str]] = []
        ctrl = controller(calls)
        ctrl.observe("ADDED", body("StreamingWindow", "w", 1, view="v"))
        ctrl.observe("MODIFIED", body("StreamingWindow", "w", 2, view="v"))
        ctrl.observe("ADDED", body("DriftMonitor", "d", 3, view="other"))
        ctrl.start()
        await settle(ctrl)
        calls.clear()
        ctrl.observe("MODIFIED", body("FeatureView", "v", 4))
        await settle(ctrl)
        ctrl.observe("MODIFIED", body("StreamingWindow", "w", 1, view="v"))  # stale event: body kept
        await settle(ctrl)
        await ctrl.stop()
        return calls

    calls = asyncio.run(scenario())
    assert sorted(calls[:2]) == [("FeatureView", "4"), ("StreamingWindow", "2")]
    assert calls[2:] == [("StreamingWindow", "2")]


def test_failures_are_retried_and_deleted_objects_dropped() -> None:
    async def scenario() -> tuple[list[tuple[str, str]], dict[str, int]]:
        calls: list[tuple[str, str]] = []
        ctrl = controller(calls, fail_first=1)
        ctrl.start()
        ctrl.observe("ADDED", body("FeatureView", "v", 1))
        for _ in range(200):
            await asyncio.sleep(0.05)
            if len(calls) >= 2:
                break
        ctrl.observe("DELETED", body("FeatureView", "v", 2))
        await settle(ctrl)
        await ctrl.stop()
        return calls, dict(ctrl.results)

    calls, results = asyncio.run(scenario())
    assert calls == [("FeatureView", "1"), ("FeatureView", "1")]
    assert results == {"error": 1, "ok": 1}


def test_own_writes_replace_older_cached_bodies_only() -> None:
    ctrl = controller([])
    ctrl.bodies[("FeatureView", "ns", "v")] = body("FeatureView", "v", 5)
    ctrl.remember(body("FeatureView", "v", 4))
    assert ctrl.bodies[("FeatureView", "ns", "v")]["metadata"]["resourceVersion"] == "5"
    ctrl.remember(body("FeatureView", "v", 6))
    assert ctrl.bodies[("FeatureView", "ns", "v")]["metadata"]["resourceVersion"] == "6"
    ctrl.remember(body("FeatureView", "gone", 7))
    assert ("FeatureView", "ns", "gone") not in ctrl.bodies


def test_every_object_is_resynced_without_events_and_deleted_ones_are_not() -> None:
    async def scenario() -> list[tuple[str, str]]:
        calls: list[tuple[str, str]] = []
        ctrl = controller(calls, resync=0.2)
        ctrl.start()
        ctrl.observe("ADDED", body("FeatureView", "v", 1))
        ctrl.observe("ADDED", body("StreamingWindow", "w", 2))
        for _ in range(200):
            await asyncio.sleep(0.05)
            if calls.count(("FeatureView", "1")) >= 3:
                break
        ctrl.observe("DELETED", body("StreamingWindow", "w", 3))
        await asyncio.sleep(0.1)
        after_delete = len([c for c in calls if c[0] == "StreamingWindow"])
        await asyncio.sleep(0.6)
        assert len([c for c in calls if c[0] == "StreamingWindow"]) == after_delete
        await ctrl.stop()
        return calls

    calls = asyncio.run(scenario())
    assert calls.count(("FeatureView", "1")) >= 3
    assert calls.count(("StreamingWindow", "2")) >= 2


def test_a_requested_recheck_comes_before_the_resync() -> None:
    async def scenario() -> list[float]:
        seen: list[float] = []
        loop = asyncio.get_running_loop()

        async def reconcile(context: Context, obj: dict[str, Any]) -> float | None:
            seen.append(loop.time())
            return 0.1

        context = Context(kube=cast(Kube, None), settings=OperatorSettings(resync_seconds=60))
        ctrl = Controller(context, workers=1, reconcilers={"StreamingWindow": reconcile})
        ctrl.start()
        ctrl.observe("ADDED", body("StreamingWindow", "w", 1))
        for _ in range(100):
            await asyncio.sleep(0.05)
            if len(seen) >= 3:
                break
        await ctrl.stop()
        return seen

    seen = asyncio.run(scenario())
    assert len(seen) >= 3
