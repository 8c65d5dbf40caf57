"""A level-triggered work queue between kopf's watch events and the reconcilers.

kopf delivers every watch event of the three kinds (and of their children); the controller keeps the
latest body per object, de-duplicates queued keys, retries failures with exponential backoff, and
re-queues the StreamingWindows and DriftMonitors that reference a FeatureView when that view changes.
Every object is also reconciled again ``resync_seconds`` after its last reconcile (sooner when the
reconciler asks, e.g. when a grace period ends), so what no event announces (a registry that lost a
subject, a topic created by someone else) is still noticed. Reconciliation is idempotent, so replaying an
event (a restart, a resync) writes nothing new.
"""

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from streamguard.api.common import GROUP
from streamguard.contracts.registry import RegistryError
from streamguard.operator.kube import KubeError
from streamguard.operator.reconcile import RECONCILERS, Context

logger = logging.getLogger(__name__)

Key = tuple[str, str, str]
"""(kind, namespace, name)"""
MAX_BACKOFF = 300.0
Reconciler = Callable[[Context, dict[str, Any]], Awaitable[float | None]]


def _version(meta: dict[str, Any]) -> int:
    try:
        return int(meta.get("resourceVersion") or 0)
    except ValueError:
        return 0


@dataclass
class Controller:
    context: Context
    workers: int = 4
    reconcilers: Mapping[str, Reconciler] = field(default_factory=lambda: dict(RECONCILERS))
    bodies: dict[Key, dict[str, Any]] = field(default_factory=dict)
    results: Counter[str] = field(default_factory=Counter)
    _queue: asyncio.Queue[Key] = field(default_factory=asyncio.Queue)
    _queued: set[Key] = field(default_factory=set)
    _active: set[Key] = field(default_factory=set)
    _dirty: set[Key] = field(default_factory=set)
    _failures: Counter[Key] = field(default_factory=Counter)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _timers: dict[Key, asyncio.TimerHandle] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.context.remember = self.remember

    def remember(self, body: dict[str, Any]) -> None:
        """Keep the newer of the cached body and one returned by our own write."""
        meta = body.get("metadata") or {}
        key = (body.get("kind", ""), meta.get("namespace", ""), meta.get("name", ""))
        cached = self.bodies.get(key)
        if cached is None:
            return
        if _version(meta) >= _version(cached["metadata"]):
            self.bodies[key] = body

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._work(), name=f"reconciler-{i}") for i in range(self.workers)]

    async def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @property
    def idle(self) -> bool:
        return not self._queued and not self._active

    def observe(self, event_type: str | None, body: dict[str, Any]) -> None:
        """A watch event of one of our kinds."""
        meta = body["metadata"]
        key = (body["kind"], meta["namespace"], meta["name"])
        if event_type == "DELETED":
            self.bodies.pop(key, None)
            self._failures.pop(key, None)
            timer = self._timers.pop(key, None)
            if timer is not None:
                timer.cancel()
        else:
            cached = self.bodies.get(key)
            if (
                cached is not None
                and event_type is not None
                and meta.get("resourceVersion") == (cached["metadata"].get("resourceVersion"))
            ):
                return  # the echo of the operator's own status or finalizer write: already reconciled
            if cached is None or _version(meta) >= _version(cached["metadata"]):
                self.bodies[key] = body
            self.enqueue(key)
        if key[0] == "FeatureView":
            for dependent in self.dependents(key[1], key[2]):
                self.enqueue(dependent)

    def observe_child(self, body: dict[str, Any]) -> None:
        """A watch event of a child: re-check its owner (someone may have edited or deleted it)."""
        meta = body["metadata"]
        own = self.context.kube.written.get((body.get("kind", ""), meta["namespace"], meta["name"]))
        if own is not None and own == meta.get("resourceVersion"):
            return  # the echo of the operator's own apply
        for ref in meta.get("ownerReferences") or []:
            if ref.get("controller") and str(ref.get("apiVersion", "")).startswith(f"{GROUP}/"):
                key = (ref["kind"], meta["namespace"], ref["name"])
                if key in self.bodies:
                    self.enqueue(key)

    def dependents(self, namespace: str, view: str) -> list[Key]:
        return [
            key
            for key, body in self.bodies.items()
            if key[0] != "FeatureView" and key[1] == namespace and (body.get("spec") or {}).get("featureView") == view
        ]

    def enqueue(self, key: Key) -> None:
        if key in self._active:
            self._dirty.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    def _enqueue_later(self, key: Key, delay: float) -> None:
        if key in self._timers:
            self._timers[key].cancel()

        def fire() -> None:
            self._timers.pop(key, None)
            if key in self.bodies:
                self.enqueue(key)

        self._timers[key] = asyncio.get_running_loop().call_later(delay, fire)

    async def _work(self) -> None:
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            body = self.bodies.get(key)
            if body is None:
                continue
            self._active.add(key)
            started = time.perf_counter()
            try:
                retry = await self.reconcilers[key[0]](self.context, body)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self._failures[key] += 1
                delay = min(MAX_BACKOFF, 2.0 ** min(self._failures[key], 9))
                self.results["error"] += 1
                expected = isinstance(error, KubeError | RegistryError | OSError)
                logger.warning(
                    "reconcile of %s %s/%s failed (retry in %.0fs): %s", *key, delay, error, exc_info=not expected
                )
                self._enqueue_later(key, delay)
            else:
                self._failures.pop(key, None)
                self.results["retry" if retry else "ok"] += 1
                resync = self.context.settings.resync_seconds
                self._enqueue_later(key, min(retry, resync) if retry else resync)
            finally:
                self._active.discard(key)
                logger.debug("reconciled %s %s/%s in %.3fs", *key, time.perf_counter() - started)
                if key in self._dirty:
                    self._dirty.discard(key)
                    self.enqueue(key)
