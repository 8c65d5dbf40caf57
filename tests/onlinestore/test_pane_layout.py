"""The combine of a window from its stored panes: every partial parsed as the job encoded it (nulls, ints, floats,
values JSON has no number for), each aggregation finished exactly as a one-value-at-a-time reference does."""

import math

from hypothesis import given
from hypothesis import strategies as st

from streamguard.onlinestore.pane_layout import PARTS, Number, combine, encode_pane, partials

COUNT_SUM_MAX = (("count", 0), ("sum", 1), ("max", 2))


def test_nulls_anywhere_in_a_pane_read_as_none() -> None:
    panes = [b",,", b"3,,", b",2.5,", b"1,-4,7"]
    assert partials(panes, 3) == [None, None, None, 3, None, None, None, 2.5, None, 1, -4, 7]


def test_a_single_null_partial_is_one_none() -> None:
    assert partials([b""], 1) == [None]
    assert combine((("max", 0),), 1, [b"", b""]) == (None,)


def test_values_json_has_no_number_for_are_still_read() -> None:
    assert partials([b"2,inf,nan"], 3)[:2] == [2, math.inf]
    assert math.isnan(partials([b"2,inf,nan"], 3)[2])  # type: ignore[arg-type]


def test_count_sum_and_max_of_a_window() -> None:
    assert combine(COUNT_SUM_MAX, 3, [b"2,10.5,7.25", b"0,,", b"1,3,3"]) == (3, 13.5, 7.25)


def test_an_empty_window_counts_and_sums_zero_and_has_no_max() -> None:
    assert combine(COUNT_SUM_MAX, 3, [b"0,,", b"0,,"]) == (0, 0, None)


def test_avg_divides_the_sum_of_sums_by_the_sum_of_counts() -> None:
    assert combine((("avg", 0),), 2, [b"3.0,2", b",0", b"6,1"]) == (3.0,)
    assert combine((("avg", 0),), 2, [b",0"]) == (None,)


def _reference(offsets: list[tuple[str, int]], width: int, panes: list[bytes]) -> list[Number]:
    """One partial at a time: ``int`` for a whole number, ``float`` otherwise, empty for a null."""
    parts = [None if not raw else float(raw) if any(c in raw for c in b".eEn") else int(raw)
             for pane in panes for raw in pane.split(b",")]
    out: list[Number] = []
    for function, at in offsets:
        values = [v for v in parts[at::width] if v is not None]
        if function in ("count", "sum"):
            out.append(sum(values))
        elif function == "avg":
            count = sum(v for v in parts[at + 1 :: width] if v is not None)
            out.append(sum(values) / count if values and count else None)
        else:
            out.append((min if function == "min" else max)(values) if values else None)
    return out


def _same(a: Number, b: Number) -> bool:
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return a == b and type(a) is type(b)


numbers = st.one_of(st.none(), st.integers(-(2**62), 2**62), st.floats(allow_nan=True, allow_infinity=True))


@given(st.lists(st.sampled_from(sorted(PARTS)), min_size=1, max_size=4), st.data())
def test_combine_equals_the_one_value_at_a_time_reference(functions: list[str], data: st.DataObject) -> None:
    offsets, at = [], 0
    for function in functions:
        offsets.append((function, at))
        at += len(PARTS[function])
    kinds = [part for function in functions for part in PARTS[function]]
    panes = [encode_pane(data.draw(st.integers(0, 10**6)) if kind == "n" else data.draw(numbers) for kind in kinds)
             for _ in range(data.draw(st.integers(1, 13)))]
    got, want = combine(offsets, at, panes), _reference(offsets, at, panes)
    assert all(_same(g, w) for g, w in zip(got, want, strict=True)), (panes, got, want)
