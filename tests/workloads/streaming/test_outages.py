"""Self-healing streams (issue 20): a dependency that fails and comes back ends in exact values, with nobody
stepping in. Real outages against the real stack: the registry stopped for 60 s, the Kafka broker and Redis
SIGKILLed and restarted after 60 s, each before the job starts and again mid-stream, in one job run per dependency
(the scenario, shared with benchmarks/recovery/run.py, is tests/workloads/streaming/outages.py).

Each outage asserts: while the dependency is away the StreamingWindow's ``StreamRunning`` condition is False
with the dependency's reason, the progress record makes no progress, serving answers ``stale`` (``not_found``
before the job's first window; never ``present``, never zeros) and its ``/readyz`` is 503 with the view not
fresh and its stream ``failing``; after the dependency's return, with nobody stepping in, every
(entity, window) equals the reference computation and serving is ``present`` with those values; and the
dead-letter topic holds exactly the really undecodable records sent among the good ones.

How fast it heals (the goal: within ``HEAL_S`` of the return) is a figure, measured by
``benchmarks/recovery/run.py`` on the same scenario, not a timed assertion: the test prints both times and
fails only when values are not exact within the scenario's bound (5 min).

Redis is another case: while it is away serving refuses lookups (503) rather than marking them, and the
progress record (kept in Redis) cannot be read; the condition says ``StoreUnavailable``. After its restart
(from its append-only file) the job re-seeds, and values must again be exact.

The registry, the broker and Redis are private ones (their own run directories), so stopping them disturbs
no other test; the kube-apiserver (and, for the registry and broker runs, Redis) are the shared stack's.
"""

from pathlib import Path

import pytest
import redis
from kubernetes import client

from streamguard.devstack.endpoints import Endpoints
from streamguard.devstack.stack import Stack
from streamguard.workloads.streaming.progress import KAFKA_UNAVAILABLE, REGISTRY_UNAVAILABLE, STORE_UNAVAILABLE
from tests.workloads.streaming.outages import (
    HEAL_S,
    Observation,
    Outcome,
    Scenario,
    broker_outages,
    registry_outages,
    store_outages,
)
from tests.workloads.streaming.support import V1

pytestmark = [pytest.mark.stack, pytest.mark.spark, pytest.mark.slow, pytest.mark.timeout(1500)]


def _truthful(seen: Observation, reason: str, words: str, served: set[str]) -> None:
    """During the outage: not running, with the dependency's reason; no progress; serving's lookups answer
    only ``served`` (never ``present``, never zeros) and its ``/readyz`` calls the view not fresh."""
    assert seen.condition["reason"] == reason and words in seen.condition["message"], seen.condition
    assert seen.state == "failing" and words in seen.reason, (seen.state, seen.reason)
    assert seen.progress_frozen, "progress advanced while the dependency was away"
    assert set(seen.serving_statuses) <= served, seen.serving_statuses
    assert 0 not in seen.serving_values, seen.serving_values
    assert seen.readyz_status == 503, seen.view_health
    assert seen.view_health["fresh"] is False and seen.view_health["stream_state"] == "failing", seen.view_health


def _check(outcome: Outcome, reason: str, words: str) -> None:
    """Truthful during both outages, only undecodable records dead-lettered, then healed after each return
    (``Scenario.heal`` fails the run when values are not exact within its bound)."""
    _truthful(outcome.at_start, reason, words, {"stale", "not_found"})  # the job never wrote a window yet
    _truthful(outcome.mid_stream, reason, words, {"stale"})  # the last values, marked
    _healed(outcome, reason)


def _healed(outcome: Outcome, reason: str) -> None:
    assert outcome.dead_letter_problems == []
    assert outcome.job_alive
    for moment, seen in (("at start", outcome.at_start), ("mid-stream", outcome.mid_stream)):
        print(f"{reason} {moment}: exact {seen.heal_s:.1f}s, serving present {seen.serving_present_s:.1f}s after "
              f"the return (goal {HEAL_S:.0f}s, measured by benchmarks/recovery/run.py)")


def test_registry_outages_at_start_and_mid_stream_heal_to_exact_values(
        stack: Endpoints, kube_api: client.ApiClient, crds: None, redis_client: "redis.Redis", tmp_path: Path,
        private_registry: tuple[Stack, str]) -> None:
    registry, registry_url = private_registry
    run = Scenario(stack, kube_api, redis_client, tmp_path, stack.kafka_bootstrap, registry_url, V1)
    _check(registry_outages(run, registry), REGISTRY_UNAVAILABLE, "unreachable")


def test_broker_sigkills_at_start_and_mid_stream_heal_to_exact_values(
        stack: Endpoints, kube_api: client.ApiClient, crds: None, redis_client: "redis.Redis", tmp_path: Path,
        private_kafka: tuple[Stack, str]) -> None:
    kafka, bootstrap = private_kafka
    run = Scenario(stack, kube_api, redis_client, tmp_path, bootstrap, stack.registry_url, V1)
    _check(broker_outages(run, kafka), KAFKA_UNAVAILABLE, "Kafka unavailable")


def test_redis_sigkills_at_start_and_mid_stream_heal_to_exact_values(
        stack: Endpoints, kube_api: client.ApiClient, crds: None, tmp_path: Path,
        private_store: tuple[Stack, str]) -> None:
    store, url = private_store
    run = Scenario(stack, kube_api, redis.Redis.from_url(url), tmp_path, stack.kafka_bootstrap, stack.registry_url,
                   V1, redis_url=url)
    outcome = store_outages(run, store)
    for seen in (outcome.at_start, outcome.mid_stream):
        assert seen.condition["reason"] == STORE_UNAVAILABLE, seen.condition
        assert "Redis unreachable" in seen.condition["message"], seen.condition
        assert seen.lookup_status == 503, "serving refuses lookups while Redis is away (never zeros)"
        assert seen.readyz_status == 503
    _healed(outcome, STORE_UNAVAILABLE)
