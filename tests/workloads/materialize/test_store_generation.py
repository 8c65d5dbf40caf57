"""The online store's generation and coverage contract: the pure reader rule, and the scripts against a
private real Redis (flush, restart from AOF, eviction under ``allkeys-lru``, out of memory)."""

from pathlib import Path
from typing import cast

import pytest
import redis

from streamguard.devstack.private_redis import private_redis
from streamguard.onlinestore.generation import (
    BATCH,
    CURRENT_GENERATION,
    EMPTY,
    PRESENT,
    STALE,
    STREAM,
    Coverage,
    Generation,
    StoreIdentity,
    combine_identities,
    coverage_key,
    coverage_verdict,
    covers,
    current_generation,
    generation_key,
    identity_from_fields,
    parse_identity,
    reading,
)
from streamguard.onlinestore.writers import commit_coverage, ensure_generation, read_coverage

IDENTITY = StoreIdentity("abc", 0, evicting=False)
MARKER = Generation("g1", 1, "abc", 0)


def test_generation_is_current_only_on_the_same_server_without_evictions() -> None:
    assert current_generation(MARKER, IDENTITY) == "g1"
    assert current_generation(None, IDENTITY) is None
    assert current_generation(MARKER, StoreIdentity("other", 0)) is None
    assert current_generation(MARKER, StoreIdentity("abc", 3)) is None


@pytest.mark.parametrize(
    ("current", "coverage", "start", "expected"),
    [
        ("g1", Coverage("g1", 1000), 1000, EMPTY),
        ("g1", Coverage("g1", 1000), 5000, EMPTY),
        ("g1", Coverage("g1", 1001), 1000, STALE),
        ("g1", Coverage("g0", 0), 1000, STALE),
        (None, Coverage("g1", 0), 1000, STALE),
        ("g1", None, 1000, STALE),
    ],
)
def test_absent_reads_empty_only_inside_current_coverage_and_present_is_stale_outside(
    current: str | None, coverage: Coverage | None, start: int, expected: str
) -> None:
    assert reading(current, coverage, start, present=False) == expected
    assert reading(current, coverage, start, present=True) == (PRESENT if expected == EMPTY else STALE)
    assert covers(current, coverage, start) == (expected == EMPTY)
    assert reading(current, coverage, start, present=False, evicting=True) == STALE, "absence proves nothing"
    assert reading(current, coverage, start, present=True, evicting=True) == reading(current, coverage, start, True)


def test_verdict_names_the_view_and_what_is_missing() -> None:
    assert coverage_verdict("v", BATCH, None, None, 0).reason == "StoreGenerationMissing"
    assert coverage_verdict("v", BATCH, "g1", Coverage("g0", 0), 0).reason == "NotReseeded"
    short = coverage_verdict("v", STREAM, "g1", Coverage("g1", 500), 100)
    assert not short.covered and short.reason == "CoverageTooShort" and "FeatureView v" in short.message
    assert coverage_verdict("v", STREAM, "g1", Coverage("g1", 100), 100).covered


def test_parse_identity_and_coverage_fields() -> None:
    info = (
        b"# Server\r\nredis_version:7.0.15\r\nrun_id:ff00\r\n\r\n# Memory\r\nmaxmemory_policy:allkeys-lru\r\n"
        b"\r\n# Stats\r\nevicted_keys:12\r\n"
    )
    assert parse_identity(info) == StoreIdentity("ff00", 12, evicting=True)
    with pytest.raises(ValueError, match="maxmemory_policy"):
        parse_identity("# Server\r\nrun_id:ff00\r\n# Stats\r\nevicted_keys:12\r\n")
    fields = {b"batch:generation": b"g1", b"batch:since_ms": b"7"}
    assert Coverage.parse(fields, BATCH) == Coverage("g1", 7)
    assert Coverage.parse(fields, STREAM) is None


def test_a_cluster_identity_counts_every_master_s_flushes_with_its_evictions() -> None:
    stats = "cmdstat_flushall:calls=2,usec=9,usec_per_call=4.50\r\ncmdstat_flushdb:calls=1,usec=3\r\n"
    info = f"run_id:aa\r\nmaxmemory_policy:noeviction\r\nevicted_keys:5\r\n# Commandstats\r\n{stats}"
    assert parse_identity(info) == StoreIdentity("aa", 5, False, flushes=3)
    as_redis_py_parses_it = {"run_id": "bb", "maxmemory_policy": "noeviction", "evicted_keys": 1,
                             "cmdstat_flushall": {"calls": 4, "usec": 7}, "cmdstat_get": {"calls": 100}}
    assert identity_from_fields(as_redis_py_parses_it).flushes == 4
    combined = combine_identities([parse_identity(info), identity_from_fields(as_redis_py_parses_it)])
    assert combined == StoreIdentity("aa,bb", 5 + 3 + 1 + 4, False)


def _identity(client: redis.Redis) -> StoreIdentity:
    return parse_identity(cast(bytes, client.eval("return redis.call('INFO', 'server', 'stats', 'memory')", 0)))


def _current(client: redis.Redis, project: str) -> str | None:
    """The read-only script's answer, checked against the pure rule on the same server."""
    scripted = cast(bytes | None, client.eval(CURRENT_GENERATION, 1, generation_key(project)))
    marker = Generation.parse(cast(dict[bytes, bytes], client.hgetall(generation_key(project))))  # type: ignore[arg-type]
    pure = current_generation(marker, _identity(client))
    assert (scripted.decode() if scripted else None) == pure
    return pure


def test_flush_ends_the_generation_and_writers_agree_on_one_new_one(tmp_path: Path) -> None:
    with private_redis(tmp_path) as client:
        assert not _identity(client).evicting
        assert _current(client, "p") is None
        first, started = ensure_generation(client, "p", 1000)
        assert started and _current(client, "p") == first
        assert ensure_generation(client, "p", 2000) == (first, False)
        assert commit_coverage(client, "p", "v", BATCH, first, 500) == 500
        assert commit_coverage(client, "p", "v", BATCH, first, 900) == 500, "coverage never shrinks"
        assert commit_coverage(client, "p", "v", STREAM, first, 700) == 700
        assert read_coverage(client, "p", "v", BATCH) == Coverage(first, 500)

        client.flushall()
        assert _current(client, "p") is None
        assert commit_coverage(client, "p", "v", BATCH, first, 500) is None
        assert not client.exists(coverage_key("p", "v"))
        second, started = ensure_generation(client, "p", 3000)
        assert started and second != first
        assert commit_coverage(client, "p", "v", BATCH, first, 500) is None, "an old generation cannot commit"


def test_a_restart_ends_the_generation_even_when_the_aof_kept_the_marker(tmp_path: Path) -> None:
    aof = ("--appendonly", "yes", "--appendfsync", "always")
    with private_redis(tmp_path, *aof) as client:
        before, _ = ensure_generation(client, "p", 1000)
    with private_redis(tmp_path, *aof) as client:
        assert client.hget(generation_key("p"), "id") == before.encode()  # type: ignore[arg-type,comparison-overlap]
        assert _current(client, "p") is None
        after, started = ensure_generation(client, "p", 2000)
        assert started and after != before


def test_any_eviction_ends_the_generation(tmp_path: Path) -> None:
    with private_redis(tmp_path, "--maxmemory", "2mb", "--maxmemory-policy", "allkeys-lru") as client:
        gen, _ = ensure_generation(client, "p", 1000)
        payload = b"x" * 1000
        for start in range(0, 20_000, 500):
            pipe = client.pipeline(transaction=False)
            for key in range(start, start + 500):
                pipe.set(f"filler:{key}", payload)
            pipe.execute()
        assert int(cast(dict[str, int], client.info("stats"))["evicted_keys"]) > 0
        assert _identity(client).evicting
        assert _current(client, "p") is None
        new, started = ensure_generation(client, "p", 2000)
        assert started and new != gen


def test_out_of_memory_refuses_a_new_generation_but_keeps_the_current_one_readable(tmp_path: Path) -> None:
    with private_redis(tmp_path, "--maxmemory-policy", "noeviction") as client:
        gen, _ = ensure_generation(client, "q", 1000)
        used = int(cast(dict[str, int], client.info("memory"))["used_memory"])
        client.config_set("maxmemory", used)
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            client.set("more", b"y" * 100_000)
        assert _current(client, "q") == gen
        assert ensure_generation(client, "q", 2000) == (gen, False)
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            ensure_generation(client, "other", 2000)
