"""Point-in-time training sets through Feast's ``get_historical_features``.

Feast's file (Dask) offline store drops an entity row entirely when, for any requested view, the
entity has source rows but none inside ``[label time - ttl, label time]``, instead of returning nulls
(so one expired view also erases the other views' values). :func:`training_set` asks Feast one view at
a time and joins the answers back onto every label row, in input order: expired or not yet known
values are null, never taken from after the label time.

A window view's offline table follows the time rule (``docs/semantics.md, "The time rule"``): a label at ``t`` gets the
window that contains ``t`` over the events before ``t`` (at millisecond precision), the value serving
returned at ``t``.
"""

from collections.abc import Sequence
from typing import Any

import pandas as pd

ROW_ID = "__streamguard_row"


def training_set(
    store: Any, labels: pd.DataFrame, features: Sequence[str], timestamp_field: str = "event_timestamp"
) -> pd.DataFrame:
    """``labels`` (join keys, ``timestamp_field``, anything else) joined with ``features`` as of each row."""
    if timestamp_field not in labels.columns:
        raise ValueError(f"labels lack the timestamp column {timestamp_field!r}")
    entity_df = labels.reset_index(drop=True).copy()
    entity_df[ROW_ID] = range(len(entity_df))
    by_view: dict[str, list[str]] = {}
    for ref in features:
        view, sep, _ = ref.partition(":")
        if not sep:
            raise ValueError(f"feature reference {ref!r} is not '<view>:<feature>'")
        by_view.setdefault(view, []).append(ref)
    out = entity_df
    for refs in by_view.values():
        joined = store.get_historical_features(entity_df=entity_df, features=refs).to_df()
        names = [ref.split(":", 1)[1] for ref in refs]
        out = out.join(joined.set_index(ROW_ID)[names], on=ROW_ID)
    return out.drop(columns=[ROW_ID])
