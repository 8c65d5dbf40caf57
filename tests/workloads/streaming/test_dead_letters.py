"""Pure rules of dead-letter replay: what a dead letter carries, which ones go back, which windows they miss."""

from collections import Counter

import pytest

from streamguard.windows import WindowShape
from streamguard.workloads.streaming.dead_letters import (
    ERROR_HEADER,
    ORIGIN_HEADER,
    TIMESTAMP_HEADER,
    DeadLetter,
    DeadLetterFormatError,
    Origin,
    closing,
    plan_replay,
)

T = 1_767_225_600_000  # 2026-01-01T00:00:00Z, a multiple of every slide below
SHAPES = {"1m": WindowShape.parse("1m", "15s"), "1h": WindowShape.parse("1h", "5m")}


def _letter(offset: int, reason: str = "schema-id-unknown:7", partition: int = 0) -> DeadLetter:
    return DeadLetter.of([(ERROR_HEADER, reason.encode()), (ORIGIN_HEADER, f"t.tx/{partition}/{offset}".encode()),
                          (TIMESTAMP_HEADER, str(T + offset).encode())], b"k", b"v")


def test_a_dead_letter_carries_reason_origin_and_timestamp() -> None:
    letter = _letter(41, partition=3)
    assert letter.origin == Origin("t.tx", 3, 41) and str(letter.origin) == "t.tx/3/41"
    assert letter.timestamp_ms == T + 41 and letter.unknown_schema_id == 7 and letter.key == b"k"
    assert _letter(1, "avro-decode-failed").unknown_schema_id is None
    old = DeadLetter.of([(ERROR_HEADER, b"not-confluent-wire-format"), (ORIGIN_HEADER, b"a.b/0/5")], None, b"x")
    assert old.timestamp_ms is None and old.origin == Origin("a.b", 0, 5)  # written before the timestamp header
    with pytest.raises(DeadLetterFormatError, match=r"streamguard\.origin"):
        DeadLetter.of([(ERROR_HEADER, b"x")], None, b"x")
    with pytest.raises(DeadLetterFormatError, match="topic/partition/offset"):
        DeadLetter.of([(ERROR_HEADER, b"x"), (ORIGIN_HEADER, b"nonsense")], None, b"x")


def test_only_ids_known_now_go_back_in_origin_order_once() -> None:
    letters = [_letter(5, partition=1), _letter(3, partition=1), _letter(9), _letter(5, partition=1),
               _letter(4, "avro-decode-failed"), _letter(6, "schema-id-unknown:8"), _letter(2)]
    times = {letter.origin: T for letter in letters}
    plan = plan_replay(letters, {7}, {Origin("t.tx", 0, 2)}, times, SHAPES, T - 1)
    assert [str(letter.origin) for letter in plan.send] == ["t.tx/0/9", "t.tx/1/3", "t.tx/1/5"]
    assert plan.duplicates == 2  # one sent twice to the dead-letter topic, one replayed before
    assert plan.kept == Counter({"avro-decode-failed": 1, "schema-id-unknown:8": 1}) and plan.still_unknown == {8}
    assert not plan.late and plan.refusal(T - 1) is None


def test_records_in_closed_windows_are_counted_and_refused() -> None:
    assert closing(SHAPES["1m"], T + 10_000, T + 15_000)  # its first 1m window ends at T+15s
    assert not closing(SHAPES["1m"], T + 10_000, T + 14_999)
    letters = [_letter(1), _letter(2), _letter(3)]
    times = {letters[0].origin: T + 10_000, letters[1].origin: T + 20_000, letters[2].origin: T + 400_000}
    plan = plan_replay(letters, {7}, set(), times, SHAPES, T + 60_000)
    assert plan.late == Counter({"1m": 2})  # their first 1h window ends at T+5m; the third misses none
    refusal = plan.refusal(T)
    assert refusal is not None and "2 of 3 records" in refusal and "1m: 2" in refusal
    unknown = plan_replay(letters, {7}, set(), times, SHAPES, None)
    assert not unknown.late and "watermark is unknown" in (unknown.refusal(None) or "")
    assert plan_replay([], {7}, set(), {}, SHAPES, None).refusal(None) is None
