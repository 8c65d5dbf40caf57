"""The writers' side of :mod:`streamguard.onlinestore.generation` over redis-py (materializer, streaming job), for
a single server (``redis.Redis``) and a Redis Cluster (``RedisCluster``) alike.

A writer calls :func:`ensure_generation` before it writes; when the id differs from the one it seeded
(or it started a new one), it re-seeds the view and then calls :func:`commit_coverage`. A ``None`` from
:func:`commit_coverage` means the generation ended while it wrote: the run must not count as done.
"""

from typing import Any, cast

from redis.cluster import RedisCluster

from streamguard.onlinestore.client import Store
from streamguard.onlinestore.generation import (
    COMMIT_COVERAGE,
    COVERAGE_FIELD_PREFIX,
    ENSURE_GENERATION,
    Coverage,
    Generation,
    Part,
    StoreIdentity,
    combine_identities,
    coverage_key,
    current_generation,
    generation_key,
    identity_from_fields,
    new_generation_id,
    parse_ensure_reply,
)


def store_identity(client: Store) -> StoreIdentity:
    """The store's identity now: the server's, or every master's of a cluster combined."""
    if isinstance(client, RedisCluster):
        replies = cast(dict[str, dict[str, Any]], client.info("server", "stats", "memory", "commandstats",
                                                               target_nodes=RedisCluster.PRIMARIES))
        return combine_identities(identity_from_fields(info) for info in replies.values())
    return identity_from_fields(cast(dict[str, Any], client.info()))


def _identity_args(client: Store) -> tuple[str | int, ...]:
    """The scripts' trailing ``ARGV``: a cluster's identity, nothing for one server (the script reads ``INFO``
    itself, in the same atomic step)."""
    if isinstance(client, RedisCluster):
        identity = store_identity(client)
        return identity.run_id, identity.evicted_keys
    return ()


def ensure_generation(client: Store, project: str, now_ms: int) -> tuple[str, bool]:
    """The project's current generation id, started now if there was none: ``(id, started)``."""
    reply = client.eval(ENSURE_GENERATION, 1, generation_key(project), new_generation_id(), now_ms,
                        *_identity_args(client))
    return parse_ensure_reply(reply)


def current_marker(client: Store, project: str) -> Generation | None:
    """The project's generation marker while its generation is current (the server that started it, no
    eviction since); ``None`` when there is none."""
    identity = store_identity(client)
    fields = cast(dict[bytes, bytes | None], client.hgetall(generation_key(project)))  # type: ignore[arg-type]
    marker = Generation.parse(fields)
    return marker if current_generation(marker, identity) is not None else None


def read_coverage(client: Store, project: str, view: str, part: Part) -> Coverage | None:
    fields = cast(dict[bytes, bytes], client.hgetall(coverage_key(project, view)))  # type: ignore[arg-type]
    return Coverage.parse(fields, part)


def commit_coverage(
    client: Store, project: str, view: str, part: Part, generation: str, since_ms: int
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
        *_identity_args(client),
    )
    return None if reply is None else int(cast(int, reply))
