"""The job's view of its topic through Kafka's admin API, and where a job without a checkpoint starts.

A job that starts without a checkpoint (a new StreamingWindow, a lost checkpoint, a changed window spec)
with ``startingOffsets: latest`` starts from the topic *by timestamp*: ``now - longest window - watermark``
(Spark's ``startingTimestamp``), so its windows are complete from the first batch. Where the topic's
retention does not reach back that far, the job records from which event time it has seen every record
(``complete_from_ms`` in the progress record, kept in ``<checkpoint>/start.json``); serving marks windows
starting before it ``partial``. This assumes a record's Kafka timestamp is not before its event time
(producers stamp records when they send them, after the event happened).
"""

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]

from streamguard.clientsecurity import KafkaEndpoint, Refusals
from streamguard.workloads.streaming import checkpoint
from streamguard.workloads.streaming.plan import StreamPlan

log = logging.getLogger(__name__)
START_FILE = "start.json"
STATE_FILE = "windows-state.json"
"""The state shape the windows query's checkpoint was begun for (:func:`replace_stale_state`)."""
WINDOWS, DEAD_LETTERS = "windows", "dead-letters"
"""The queries, and their folders under the checkpoint."""
TIMEOUT_S = 10.0
ADMIN_CONFIG: dict[str, str | int] = {"reconnect.backoff.ms": 500, "reconnect.backoff.max.ms": 1000}
"""The job's admin clients (librdkafka): reconnect to a broker at most a second apart. librdkafka's default
backoff grows to 10 s while the broker is away, so its return would be noticed up to 10 s late. The initial
backoff (default 100 ms) is raised too: while a request waits for an away broker, librdkafka otherwise
reconnects (and logs the refusal) about 20 times a second; at 500 ms it is 4 times."""


class TopicMissingError(RuntimeError):
    """The job's topic does not exist."""


@dataclass(frozen=True)
class Start:
    """Where a query without a checkpoint starts, and what the job has therefore seen."""

    starting_timestamp_ms: int | None
    """Spark's ``startingTimestamp``; ``None``: the spec's ``startingOffsets`` (``earliest``)."""
    complete_from_ms: int


def start_timestamp(plan: StreamPlan, now_ms: int) -> int | None:
    """``now - longest window - watermark`` for ``latest``; ``None`` (read everything) for ``earliest``."""
    if plan.starting_offsets != "latest":
        return None
    return now_ms - max(w.length_ms for w in plan.windows) - plan.watermark_ms


def complete_from(start_ms: int | None, now_ms: int, retained: Mapping[int, tuple[int, int | None]]) -> int:
    """The event time from which every record was read, starting at ``start_ms`` (``None``: earliest).

    ``retained``: partition -> (log start offset, timestamp of its first retained record or ``None``
    when the partition holds none). A partition whose log start is 0 has lost nothing; one whose log start
    is past 0 lost records up to its first retained record (all of it, when it holds none)."""
    bound = start_ms or 0
    for low, first_ms in retained.values():
        if low > 0:
            bound = max(bound, first_ms if first_ms is not None else now_ms)
    return bound


def has_checkpoint(checkpoint_dir: str, query: str = WINDOWS) -> bool:
    """True when ``query`` has committed or planned a batch (Spark then ignores the starting options)."""
    return bool(checkpoint.at(checkpoint_dir).names(f"{query}/offsets"))


def _offset_log(checkpoint_dir: str, batch_id: int, query: str) -> tuple[str, list[str]]:
    """The path and lines of Spark's offset log entry of ``batch_id`` (written before the batch runs: ``v1``, a
    metadata line, then one line per source, ``{"<topic>": {"<partition>": offset}}``)."""
    path = f"{query}/offsets/{batch_id}"
    text = checkpoint.at(checkpoint_dir).read_text(path)
    if text is None:
        raise FileNotFoundError(f"{checkpoint_dir}/{path}: no such offset log entry")
    return f"{checkpoint_dir}/{path}", text.splitlines()


def batch_end_offsets(checkpoint_dir: str, batch_id: int, topic: str, query: str = WINDOWS) -> dict[int, int]:
    """Partition -> end offset of batch ``batch_id`` of ``query``, from Spark's offset log."""
    path, lines = _offset_log(checkpoint_dir, batch_id, query)
    for line in lines[2:]:
        try:
            source = json.loads(line)
        except ValueError:
            continue
        if isinstance(source, dict) and isinstance(source.get(topic), dict):
            return {int(p): int(o) for p, o in source[topic].items()}
    raise ValueError(f"{path}: no offsets of topic {topic}")


def late_watermark(checkpoint_dir: str, batch_id: int, query: str = WINDOWS) -> int:
    """The watermark batch ``batch_id`` filters late events with: Spark's previous batch's (the watermark the
    batch itself sets is for evicting state), or its own for the first batch of a checkpoint."""
    try:
        path, lines = _offset_log(checkpoint_dir, batch_id - 1, query)
    except FileNotFoundError:
        path, lines = _offset_log(checkpoint_dir, batch_id, query)
    try:
        return int(json.loads(lines[1])["batchWatermarkMs"])
    except (IndexError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path}: no batchWatermarkMs in its metadata line") from error


def planned_ends(checkpoint_dir: str, topic: str, queries: Iterable[str]) -> dict[int, int]:
    """Partition -> the highest end offset of the last batch any of ``queries`` planned (empty when none has
    planned one): every record below it has been, or will be when its batch runs again, handled by them."""
    ends: dict[int, int] = {}
    for query in queries:
        batches = [int(n) for n in checkpoint.at(checkpoint_dir).names(f"{query}/offsets") if n.isdigit()]
        if batches:
            for partition, offset in batch_end_offsets(checkpoint_dir, max(batches), topic, query).items():
                ends[partition] = max(offset, ends.get(partition, offset))
    return ends


def reached(done: Mapping[int, int], *ends: Mapping[int, int]) -> bool:
    """Whether ``done`` (partition -> end offset handled) is at or past every partition's offset in ``ends``
    (a partition missing from ``done`` has handled nothing)."""
    return all(done.get(partition, 0) >= offset for end in ends for partition, offset in end.items())


def read_start(checkpoint_dir: str) -> Start | None:
    text = checkpoint.at(checkpoint_dir).read_text(START_FILE)
    if text is None:
        return None
    try:
        data = json.loads(text)
        return Start(data.get("starting_timestamp_ms"), int(data["complete_from_ms"]))
    except (ValueError, KeyError, TypeError):
        return None


def write_start(checkpoint_dir: str, start: Start) -> None:
    checkpoint.at(checkpoint_dir).write_text(START_FILE, json.dumps(
        {"starting_timestamp_ms": start.starting_timestamp_ms, "complete_from_ms": start.complete_from_ms}))


class TopicProbe:
    """Admin-API reads of one topic: partitions, end offsets, what retention kept."""

    def __init__(self, kafka: KafkaEndpoint, topic: str) -> None:
        self.topic = topic
        self._refusals = Refusals()
        self._admin = AdminClient(kafka.confluent(**ADMIN_CONFIG, error_cb=self._refusals))

    def partitions(self) -> list[int]:
        """The topic's partitions; :class:`TopicMissingError` when it does not exist. A broker refusing the
        job's TLS handshake or SASL login raises that refusal (not just a time-out)."""
        try:
            metadata = self._admin.list_topics(topic=self.topic, timeout=TIMEOUT_S)
        except KafkaException as error:
            self._admin.poll(0)
            if self._refusals.last is not None:
                raise KafkaException(self._refusals.last) from error
            raise
        self._refusals.last = None
        found = metadata.topics.get(self.topic)
        if found is None or (found.error is not None and found.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART):
            raise TopicMissingError(f"topic {self.topic} does not exist")
        if found.error is not None:
            raise KafkaException(found.error)
        if not found.partitions:
            raise TopicMissingError(f"topic {self.topic} has no partitions")
        return sorted(found.partitions)

    def _list(self, partitions: list[int], spec: OffsetSpec) -> dict[int, tuple[int, int]]:
        futures = self._admin.list_offsets({TopicPartition(self.topic, p): spec for p in partitions},
                                           request_timeout=TIMEOUT_S)
        out = {}
        for tp, future in futures.items():
            info = future.result(timeout=TIMEOUT_S)
            out[tp.partition] = (int(info.offset), int(info.timestamp))
        return out

    def offsets_for_time(self, partitions: list[int], timestamp_ms: int) -> dict[int, int | None]:
        """Partition -> the first offset whose record timestamp is at or after ``timestamp_ms``, ``None`` when
        the partition holds no such record."""
        found = self._list(partitions, OffsetSpec.for_timestamp(timestamp_ms))
        return {p: (o if o >= 0 else None) for p, (o, _) in found.items()}

    def end_offsets(self, partitions: list[int]) -> dict[int, int]:
        latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
        return {p: o for p, (o, _) in self._list(partitions, latest).items()}

    def retained(self, partitions: list[int]) -> dict[int, tuple[int, int | None]]:
        """Partition -> (log start offset, timestamp of the first retained record or ``None``)."""
        low = self._list(partitions, OffsetSpec.earliest())  # type: ignore[no-untyped-call]
        first = self._list(partitions, OffsetSpec.for_timestamp(0))
        return {p: (low[p][0], first[p][1] if first[p][0] >= 0 else None) for p in partitions}


def replace_stale_state(plan: StreamPlan) -> bool:
    """Delete the windows query's checkpoint when it was begun for another state shape (``PaneShape.state``:
    before pane aggregation, or with other slides, partial aggregates or key); whether it did. Its state rows
    would not mean what this job reads them as, so the query starts anew, from where a job without a checkpoint
    starts (:func:`plan_start`); the dead-letter query keeps its checkpoint."""
    location = checkpoint.at(plan.checkpoint_dir)
    shape = json.dumps(plan.pane_shape.state(), sort_keys=True)
    recorded = location.read_text(STATE_FILE)
    if recorded is not None and json.dumps(json.loads(recorded), sort_keys=True) == shape:
        return False
    stale = has_checkpoint(plan.checkpoint_dir)
    if stale:
        log.warning("the windows checkpoint of %s was begun for another state shape (%s, now %s): it starts anew",
                    plan.ref, recorded or "before pane aggregation", shape)
        for folder in ("state", "commits", "sources", ""):  # the offset log last: until it is gone, this runs again
            location.remove(f"{WINDOWS}/{folder}".rstrip("/"))
    location.write_text(STATE_FILE, shape)
    return stale


def plan_start(plan: StreamPlan, probe: TopicProbe, partitions: list[int], now_ms: int) -> Start:
    """The start of this run: the recorded one when the windows query has a checkpoint, else a new one
    (recorded). A checkpoint from before ``start.json`` existed is complete only from now on."""
    timestamp = start_timestamp(plan, now_ms)
    if has_checkpoint(plan.checkpoint_dir):
        recorded = read_start(plan.checkpoint_dir)
        if recorded is not None:
            return Start(timestamp, recorded.complete_from_ms)
        start = Start(timestamp, now_ms)
    else:
        start = Start(timestamp, complete_from(timestamp, now_ms, probe.retained(partitions)))
        if timestamp is not None and start.complete_from_ms > timestamp:
            log.warning("topic %s no longer holds records from %d (retention): windows starting before %d are "
                        "partial", plan.topic, timestamp, start.complete_from_ms)
    write_start(plan.checkpoint_dir, start)
    return start
