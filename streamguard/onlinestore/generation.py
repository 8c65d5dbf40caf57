"""The store's generation and each view's coverage: when an absent key proves an empty value.

Serving reads a missing window hash as an empty window and a missing Feast field as ``not_found``. That
is only true when the store still holds everything the writers wrote. Eviction, a restart that loses
data (no persistence, or the last ``appendfsync everysec`` second after a SIGKILL), a failover to a
replica that lagged and ``FLUSHALL`` all remove keys without telling anyone. This module is the
contract that makes those losses visible; writers (materializer, streaming job) and readers (serving)
use only these keys, scripts and functions.

**Generation marker** (per store project: namespace and ``spec.project``,
:mod:`streamguard.onlinestore.tenancy`), hash ``sg-gen:{<store project>}``:

- ``id``: random token of this generation; ``created_ms``: when it began (epoch ms);
- ``run_id``: the Redis server's ``run_id`` (``INFO server``) when it began;
- ``evicted_keys``: the server's ``evicted_keys`` counter (``INFO stats``) when it began.

On a Redis Cluster the server is every master together (:func:`combine_identities`): ``run_id`` is their
``run_id`` s sorted and joined with ``,`` and ``evicted_keys`` the sum of their ``evicted_keys`` and of the
``FLUSHALL`` and ``FLUSHDB`` calls each has served (``INFO commandstats``). A failover, a master's restart, an
added master, an eviction or a flush on any shard then ends the generation, as a restart of a single server does
(a flush of one master empties only that master: the marker, on another, survives it). A
script sees only its own node's ``INFO``, so on a cluster the writer reads every master's and passes the
identity in ``ARGV`` (a failover between that read and the script only ends the generation early, the safe
way to be wrong). The marker and the coverage keys carry the store project as their hash tag (``{...}``),
so :data:`COMMIT_COVERAGE`'s two keys share a slot.

A generation is *current* while the marker exists and the server's ``run_id`` and ``evicted_keys``
still equal the recorded ones (:func:`current_generation`, :data:`CURRENT_GENERATION`). So:

- a flush (or an empty restart) removes the marker;
- any restart, crash or failover changes ``run_id`` (a restart from AOF may have lost its last second,
  a promoted replica may lag), so the generation ends even when the marker survived;
- any eviction, of any key, raises ``evicted_keys``. Redis gives no cheaper proof that *our* keys
  survived: under an evicting policy an absent key proves nothing, so the generation ends. This
  counter is the smallest mechanism that needs no keyspace notifications, no per-key bookkeeping and
  no configuration change, and it holds for every policy a user may set by hand. ``CONFIG RESETSTAT``
  also ends the generation (conservative).

Writers call :data:`ENSURE_GENERATION` before writing (one atomic script: it returns the current id or
starts a new generation, so concurrent writers agree on one id). Keys deleted one by one by hand (``DEL``)
are not detected: delete ``sg-gen:<store project>`` too to make every writer re-seed.

**Coverage** (per view), hash ``sg-cov:{<store project>}:<view>``, per writer part (``batch``: the materializer,
``stream``: the streaming job) the fields ``<part>:generation`` and ``<part>:since_ms``: since which
time (event time, epoch ms) the part's writer has kept everything it writes for this view in that
generation. A writer sets it with :data:`COMMIT_COVERAGE` after it has (re-)seeded the view in a
generation; within one generation coverage never shrinks (the script keeps the first ``since_ms``),
and it is refused when the generation is no longer current. ``since_ms = 0`` means "everything": the
writer never writes anything older (e.g. a batch view seeded from ``spec.materialization.start``).

**Reader rule** (:func:`reading`): the view part *covers* what is asked when the coverage's generation
equals the current generation and its ``since_ms`` is at or before the start of what is asked: the
window's start ``end - W`` (``end`` from :meth:`streamguard.windows.WindowShape.end_as_of`), or
``now - ttl`` for a batch value. Covered, a stored value is what it says and an absent one is empty
(window: count 0, sum 0, others null; batch: ``not_found``), unless the server runs an evicting
``maxmemory-policy``: then an absent key proves nothing and reads ``stale`` too. Not covered, every
value of that part is ``stale``, present or absent, never ``present``: after a restart or failover the
store may hold an older value (a lost last second of AOF, a lagging replica), and after a partial
re-seed a window may lack events from before ``since_ms``. A view whose part is not covered is not
fresh (:func:`coverage_verdict`).

**How often readers check.** Per lookup, the marker (``HMGET`` of its fields in the values' round trip,
as cheap as any field read; a flush shows at once) and the coverage (cacheable for as long as values
are). The server's identity (:func:`parse_identity` of ``INFO server stats memory commandstats``: ``run_id``,
``evicted_keys``, ``maxmemory_policy``, the flushes) on every new connection (a restart or failover drops
connections, so it shows at once) and at least on every health tick (an eviction, a policy change or a flush of
one cluster master shows within one tick; under an evicting policy absent keys already read ``stale``). ``INFO``
costs tens of microseconds of Redis time, too much for every lookup; :data:`CURRENT_GENERATION` (the same check as
one script) is for occasional use, not the request path.

Scripts keep every key they touch in ``KEYS`` and are valid for ``EVAL`` and ``EVALSHA``. On a single server
they call ``INFO`` themselves so the comparison and the write are one atomic step; two trailing ``ARGV``
(``run_id``, ``evicted_keys``) give them a cluster's identity instead.
"""

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

Part = Literal["batch", "stream"]
BATCH: Part = "batch"
STREAM: Part = "stream"

ID, CREATED_MS, RUN_ID, EVICTED_KEYS = b"id", b"created_ms", b"run_id", b"evicted_keys"
EVERYTHING_MS = 0
"""``since_ms`` of a coverage that holds everything the writer would ever write."""

Reading = Literal["present", "empty", "stale"]
PRESENT: Reading = "present"
EMPTY: Reading = "empty"
STALE: Reading = "stale"


def generation_key(project: str) -> bytes:
    return f"sg-gen:{{{project}}}".encode()


def coverage_key(project: str, view: str) -> bytes:
    return f"sg-cov:{{{project}}}:{view}".encode()


COVERAGE_FIELD_PREFIX: dict[Part, str] = {BATCH: "batch", STREAM: "stream.panes3"}
"""The coverage fields of each part. The stream's name its layout (``pane_layout.STATE_LAYOUT``): a job before
pane aggregation (``stream:``) kept no panes in the store, and one of ``panes/1`` (``stream.panes:``) or
``panes/2`` (``stream.panes2:``) kept them under other keys, so after an upgrade their coverage does not count
(serving reads the view ``stale``, never an empty pane hash as zeros) and the job re-seeds the panes its windows
are combined from."""


def coverage_fields(part: Part) -> tuple[bytes, bytes]:
    """The ``(generation, since_ms)`` field names of one writer part in the coverage hash."""
    prefix = COVERAGE_FIELD_PREFIX[part]
    return f"{prefix}:generation".encode(), f"{prefix}:since_ms".encode()


def new_generation_id() -> str:
    return secrets.token_hex(8)


@dataclass(frozen=True)
class StoreIdentity:
    """What the running server says about itself: a changed ``run_id`` or ``evicted_keys`` ends the
    generation; ``evicting`` (a ``maxmemory-policy`` other than ``noeviction``) makes absent keys stale."""

    run_id: str
    evicted_keys: int
    evicting: bool = False
    flushes: int = 0
    """``FLUSHALL`` and ``FLUSHDB`` calls the server has served (``INFO commandstats``; 0 when not asked). One
    server's flush removes the marker itself; :func:`combine_identities` counts them for a cluster's masters."""


FLUSH_COMMANDS = ("cmdstat_flushall", "cmdstat_flushdb")


def _calls(stat: object) -> int:
    """The ``calls`` of one ``INFO commandstats`` line's value: ``calls=3,usec=...`` as text, or as redis-py parses
    it (a dict)."""
    if isinstance(stat, Mapping):
        return int(stat.get("calls", 0))
    for part in str(stat).split(","):
        name, _, value = part.partition("=")
        if name.strip() == "calls":
            return int(value)
    return 0


def parse_identity(info: bytes | str) -> StoreIdentity:
    """The identity from the text of ``INFO server stats memory commandstats``."""
    text = info.decode() if isinstance(info, bytes) else info
    return identity_from_fields(
        dict(line.split(":", 1) for line in text.splitlines() if ":" in line and not line.startswith("#"))
    )


def identity_from_fields(fields: Mapping[str, object]) -> StoreIdentity:
    """The identity from ``INFO server stats memory commandstats``' fields (as text, or as redis-py parses them)."""
    try:
        policy = str(fields["maxmemory_policy"]).strip()
        flushes = sum(_calls(fields[name]) for name in FLUSH_COMMANDS if name in fields)
        return StoreIdentity(str(fields["run_id"]).strip(), int(str(fields["evicted_keys"])), policy != "noeviction",
                             flushes)
    except KeyError as missing:
        raise ValueError(f"INFO reply lacks {missing.args[0]} (need the server, stats and memory sections)") from None


def combine_identities(identities: Iterable[StoreIdentity]) -> StoreIdentity:
    """The identity of a Redis Cluster from its masters' (one server's own identity when it is the only one)."""
    masters = list(identities)
    if not masters:
        raise ValueError("a store identity needs at least one server")
    return StoreIdentity(
        ",".join(sorted(identity.run_id for identity in masters)),
        sum(identity.evicted_keys + identity.flushes for identity in masters),
        any(identity.evicting for identity in masters),
    )


def _text(raw: bytes | str | None) -> str | None:
    return raw.decode() if isinstance(raw, bytes) else raw


@dataclass(frozen=True)
class Generation:
    id: str
    created_ms: int
    run_id: str
    evicted_keys: int

    @classmethod
    def parse(cls, fields: Mapping[bytes, bytes | None]) -> "Generation | None":
        """The marker from ``HGETALL sg-gen:<store project>``; ``None`` when absent or incomplete."""
        values = [_text(fields.get(name)) for name in (ID, CREATED_MS, RUN_ID, EVICTED_KEYS)]
        if any(v is None for v in values):
            return None
        gen_id, created, run_id, evicted = values
        assert gen_id is not None and created is not None and run_id is not None and evicted is not None
        return cls(gen_id, int(created), run_id, int(evicted))


def current_generation(marker: Generation | None, identity: StoreIdentity) -> str | None:
    """The id of the current generation, or ``None`` when there is none (the same rule as the scripts)."""
    if marker is None or marker.run_id != identity.run_id or marker.evicted_keys != identity.evicted_keys:
        return None
    return marker.id


@dataclass(frozen=True)
class Coverage:
    generation: str
    since_ms: int

    @classmethod
    def parse(cls, fields: Mapping[bytes, bytes | None], part: Part) -> "Coverage | None":
        """One part's coverage from ``HGETALL sg-cov:<store project>:<view>``; ``None`` when never written."""
        gen_field, since_field = coverage_fields(part)
        generation, since = _text(fields.get(gen_field)), _text(fields.get(since_field))
        if generation is None or since is None:
            return None
        return cls(generation, int(since))


def covers(current: str | None, coverage: Coverage | None, start_ms: int) -> bool:
    """Whether the store provably holds everything the part's writer wrote from ``start_ms`` on."""
    return (
        current is not None
        and coverage is not None
        and coverage.generation == current
        and coverage.since_ms <= start_ms
    )


def reading(
    current: str | None, coverage: Coverage | None, start_ms: int, present: bool, evicting: bool = False
) -> Reading:
    """How to read a value (``present``: its key/field exists) asked from ``start_ms`` on; ``evicting``
    from :attr:`StoreIdentity.evicting`."""
    if not covers(current, coverage, start_ms):
        return STALE
    if present:
        return PRESENT
    return STALE if evicting else EMPTY


@dataclass(frozen=True)
class Verdict:
    covered: bool
    reason: str
    message: str


def coverage_verdict(
    view: str, part: Part, current: str | None, coverage: Coverage | None, needed_from_ms: int
) -> Verdict:
    """Whether a view's part can be called fresh: the store must hold everything since ``needed_from_ms``
    (the longest window's start, or ``now - ttl``). The message names the view and what is missing."""
    writer = "materialization" if part == BATCH else "streaming job"
    if current is None:
        return Verdict(
            False,
            "StoreGenerationMissing",
            f"FeatureView {view}: the online store has no current generation (flushed, restarted, failed over "
            f"or evicted keys); the {writer} has not re-seeded it yet",
        )
    if coverage is None or coverage.generation != current:
        return Verdict(
            False,
            "NotReseeded",
            f"FeatureView {view}: the {writer} has not re-seeded the online store's generation {current} yet",
        )
    if coverage.since_ms > needed_from_ms:
        return Verdict(
            False,
            "CoverageTooShort",
            f"FeatureView {view}: the {writer} holds data since {coverage.since_ms} ms, "
            f"{needed_from_ms} ms and later is needed",
        )
    return Verdict(True, "Covered", f"FeatureView {view}: the {writer} covers generation {current}")


def _check(identity_at: int) -> str:
    """Lua setting ``current`` (the current generation id or false); the identity is ``ARGV[identity_at]`` and
    the next one when given (a cluster's), else this server's ``INFO``."""
    return (
        f"""local run_id, evicted = ARGV[{identity_at}], ARGV[{identity_at + 1}]
if not run_id then
  local info = redis.call('INFO', 'server', 'stats')
  run_id = string.match(info, 'run_id:(%x+)')
  evicted = string.match(info, 'evicted_keys:(%d+)')
end
"""
        + """local marker = redis.call('HMGET', KEYS[1], 'id', 'run_id', 'evicted_keys')
local current = false
if marker[1] and marker[2] == run_id and marker[3] == evicted then current = marker[1] end
"""
    )


CURRENT_GENERATION = (
    "#!lua flags=no-writes\n"
    + _check(1)
    + """return current
"""
)
"""Read-only. ``KEYS[1]`` = :func:`generation_key`; ``ARGV`` = a cluster's identity or nothing. Returns the
current generation id, or nil. It runs ``INFO`` (tens of microseconds): for
health checks and tools, not for every lookup."""

ENSURE_GENERATION = (
    _check(3)
    + """if current then return {current, 0} end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'created_ms', ARGV[2], 'run_id', run_id, 'evicted_keys', evicted)
return {ARGV[1], 1}
"""
)
"""``KEYS[1]`` = :func:`generation_key`; ``ARGV`` = a new id (:func:`new_generation_id`), now (ms)[, a
cluster's identity].
Returns ``{id, 1}`` when it started a new generation, ``{id, 0}`` when one was current."""

COMMIT_COVERAGE = (
    _check(4)
    + """if current ~= ARGV[1] then return false end
local gen_field = ARGV[2] .. ':generation'
local since_field = ARGV[2] .. ':since_ms'
local held = redis.call('HMGET', KEYS[2], gen_field, since_field)
if held[1] == current and held[2] then return tonumber(held[2]) end
redis.call('HSET', KEYS[2], gen_field, current, since_field, ARGV[3])
return tonumber(ARGV[3])
"""
)
"""``KEYS`` = :func:`generation_key`, :func:`coverage_key`; ``ARGV`` = the generation the writer seeded,
its part's field prefix (:data:`COVERAGE_FIELD_PREFIX`), ``since_ms``[, a cluster's identity]. Returns the
coverage's ``since_ms`` (the first one of this generation), or nil when that generation is no longer current
(nothing written)."""


def parse_ensure_reply(reply: object) -> tuple[str, bool]:
    """``(generation id, started a new one)`` from :data:`ENSURE_GENERATION`'s reply."""
    if not isinstance(reply, list | tuple) or len(reply) != 2:
        raise ValueError(f"unexpected ENSURE_GENERATION reply {reply!r}")
    gen_id = _text(reply[0])
    if gen_id is None:
        raise ValueError(f"unexpected ENSURE_GENERATION reply {reply!r}")
    return gen_id, bool(int(reply[1]))
