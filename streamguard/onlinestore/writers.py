"""The writers' side of :mod:`streamguard.onlinestore.generation` over redis-py (materializer, streaming job).

A writer calls :func:`ensure_generation` before it writes; when the id differs from the one it seeded
(or it started a new one), it re-seeds the view and then calls :func:`commit_coverage`. A ``None`` from
:func:`commit_coverage` means the generation ended while it wrote: the run must not count as done.
"""

from typing import Any, cast

import redis

from streamguard.onlinestore.generation import (
    COMMIT_COVERAGE,
    COVERAGE_FIELD_PREFIX,
    ENSURE_GENERATION,
    Coverage,
    Generation,
    Part,
    StoreIdentity,
    coverage_key,
    current_generation,
    generation_key,
    new_generation_id,
    parse_ensure_reply,
)


def ensure_generation(client: redis.Redis, project: str, now_ms: int) -> tuple[str, bool]:
    """The project's current generation id, started now if there was none: ``(id, started)``."""
    reply = client.eval(ENSURE_GENERATION, 1, generation_key(project), new_generation_id(), now_ms)
    return parse_ensure_reply(reply)


def current_marker(client: redis.Redis, project: str) -> Generation | None:
    """The project's generation marker while its generation is current (the server that started it, no
    eviction since); ``None`` when there is none."""
    server = cast(dict[str, Any], client.info("server"))
    stats = cast(dict[str, Any], client.info("stats"))
    identity = StoreIdentity(str(server["run_id"]), int(stats["evicted_keys"]))
    fields = cast(dict[bytes, bytes | None], client.hgetall(generation_key(project)))  # type: ignore[arg-type]
    marker = Generation.parse(fields)
    return marker if current_generation(marker, identity) is not None else None


def read_coverage(client: redis.Redis, project: str, view: str, part: Part) -> Coverage | None:
    fields = cast(dict[bytes, bytes], client.hgetall(coverage_key(project, view)))  # type: ignore[arg-type]
    return Coverage.parse(fields, part)


def commit_coverage(
    client: redis.Redis, project: str, view: str, part: Part, generation: str, since_ms: int
) -> int | None:
    """Record that ``part`` holds the view since ``since_ms`` in ``generation``; the coverage's
    ``since_ms`` (the first of the generation), or ``None`` when ``generation`` is no longer current."""
    reply = client.eval(
        COMMIT_COVERAGE,
        2,
        generation_key(project),
        coverage_key(project, view),
        generation,
        COVERAGE_FIELD_PREFIX[part],
        since_ms,
    )
    return None if reply is None else int(cast(int, reply))
