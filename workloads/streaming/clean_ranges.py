"""Which records the windows query read and found free of dead letters, so that the dead-letter query need not
read and decode them a second time (the pure part).

The windows query counts, per batch, the records it read and those with a dead-letter reason (Spark's
``observe``, named :data:`CHECKED`). A batch with none proves its offset range clean. The proof holds for the
dead-letter query too: both queries decode with the same verdicts (a changed verdict restarts both, and an
earlier verdict keeps holding below its boundary, ``verdicts``). The dead-letter query reads, per partition, only
the range from the first to the last offset of its batch not proven clean, and nothing when all of it is.
Proofs live in memory: after a restart of the job the dead-letter query reads its batches whole, as it always did.
"""

from collections.abc import Mapping
from typing import Any

from streamguard.workloads.streaming.progress import Offsets, topic_offsets

CHECKED = "checked"
"""The name of the windows query's observed metrics: ``records`` read and ``bad`` ones among them."""

Ranges = dict[int, tuple[int, int]]
"""Partition -> ``[start, end)`` offsets."""


def proof_of(progress: Mapping[str, Any], topic: str) -> tuple[Offsets, Offsets, bool] | None:
    """``(start, end, clean)`` of a windows batch's progress report; ``None`` when the report does not say (the
    first batch of a checkpoint has no start, a report without the observed counts proves nothing)."""
    source = (progress.get("sources") or [{}])[0]
    start = topic_offsets(source.get("startOffset"), topic)
    end = topic_offsets(source.get("endOffset"), topic)
    counts = (progress.get("observedMetrics") or {}).get(CHECKED)
    if start is None or end is None or not isinstance(counts, Mapping):
        return None
    return start, end, int(counts.get("bad", 1)) == 0


class CleanRanges:
    """Per partition, the merged offset ranges proven clean, and how far any windows report reached."""

    def __init__(self) -> None:
        self._clean: dict[int, list[tuple[int, int]]] = {}
        self.seen: Offsets = {}
        """Partition -> the highest end offset of a windows batch reported, clean or not."""

    def add(self, start: Offsets, end: Offsets, clean: bool) -> None:
        """One windows batch's range; a partition missing from ``start`` proves nothing."""
        for partition, stop in end.items():
            self.seen[partition] = max(stop, self.seen.get(partition, stop))
            begin = start.get(partition)
            if clean and begin is not None and begin < stop:
                self._clean[partition] = _merged([*self._clean.get(partition, []), (begin, stop)])

    def unproven(self, span: Ranges) -> Ranges:
        """Per partition of ``span``, the range from its first to its last offset not proven clean (partitions
        proven whole are left out)."""
        left: Ranges = {}
        for partition, (start, end) in span.items():
            first, last = start, end
            ranges = self._clean.get(partition, [])
            for low, high in ranges:
                if low <= first < high:
                    first = high
            for low, high in reversed(ranges):
                if low < last <= high:
                    last = low
            if first < last:
                left[partition] = (first, last)
        return left

    def forget_below(self, offsets: Offsets) -> None:
        """Drop what lies below ``offsets`` (the dead-letter query has handled it)."""
        for partition, offset in offsets.items():
            kept = [(max(low, offset), high) for low, high in self._clean.get(partition, []) if high > offset]
            self._clean[partition] = kept


def _merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for low, high in sorted(ranges):
        if merged and low <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(high, merged[-1][1]))
        else:
            merged.append((low, high))
    return merged
