"""Field-level differences between two specs, and the created / changed / deleted set of a plan.

Lists whose items all carry a ``name`` (features, entities, windows, aggregations) are compared by name,
so inserting a feature shows as one addition rather than every later index changing. Strings that hold
JSON objects (an Avro contract) are compared as the JSON they hold.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from streamguard.delivery.resources import Key, Resource

_MISSING: Any = object()


@dataclass(frozen=True)
class FieldChange:
    path: str
    old: Any = _MISSING
    new: Any = _MISSING

    @property
    def added(self) -> bool:
        return self.old is _MISSING

    @property
    def removed(self) -> bool:
        return self.new is _MISSING

    def describe(self) -> str:
        if self.added:
            return f"+ {self.path}: {render_value(self.new)}"
        if self.removed:
            return f"- {self.path}: {render_value(self.old)}"
        return f"~ {self.path}: {render_value(self.old)} -> {render_value(self.new)}"


def render_value(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, sort_keys=True, separators=(", ", ": "))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _json_object(value: Any) -> Any:
    if isinstance(value, str) and value.lstrip().startswith(("{", "[")):
        try:
            return json.loads(value)
        except ValueError:
            return _MISSING
    return _MISSING


def _named(items: list[Any]) -> dict[str, Any] | None:
    if not items or not all(isinstance(i, dict) and isinstance(i.get("name"), str) for i in items):
        return None
    names = [i["name"] for i in items]
    return dict(zip(names, items, strict=True)) if len(set(names)) == len(names) else None


def _keyed_diff(
    old: dict[Any, Any], new: dict[Any, Any], keys: list[Any], path_of: Callable[[Any], str]
) -> list[FieldChange]:
    """Removed, added and changed entries of two mappings, in the order of ``keys``."""
    changes: list[FieldChange] = []
    for key in keys:
        if key not in new:
            changes.append(FieldChange(path_of(key), old=old[key]))
        elif key not in old:
            changes.append(FieldChange(path_of(key), new=new[key]))
        else:
            changes.extend(field_diff(old[key], new[key], path_of(key)))
    return changes


def field_diff(old: Any, new: Any, path: str = "") -> list[FieldChange]:
    """Every leaf that differs between ``old`` and ``new`` (``path`` like ``.features[name=x].dtype``)."""
    if old == new:
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        return _keyed_diff(old, new, sorted(old.keys() | new.keys()), lambda key: f"{path}.{key}")
    if isinstance(old, list) and isinstance(new, list):
        old_named, new_named = _named(old), _named(new)
        if old_named is not None and new_named is not None:
            names = [*old_named, *(n for n in new_named if n not in old_named)]
            changes = _keyed_diff(old_named, new_named, names, lambda name: f"{path}[name={name}]")
            if not changes and list(old_named) != list(new_named):
                changes.append(FieldChange(f"{path} (order)", list(old_named), list(new_named)))
            return changes
        if len(old) == len(new):
            return [c for i, (a, b) in enumerate(zip(old, new, strict=True)) for c in field_diff(a, b, f"{path}[{i}]")]
        return [FieldChange(path, old, new)]
    old_json, new_json = _json_object(old), _json_object(new)
    if old_json is not _MISSING and new_json is not _MISSING:
        return field_diff(old_json, new_json, path) or [FieldChange(f"{path} (formatting)", old, new)]
    return [FieldChange(path, old, new)]


class Action(StrEnum):
    CREATE = "create"
    CHANGE = "change"
    DELETE = "delete"
    UNCHANGED = "unchanged"


@dataclass
class Change:
    key: Key
    action: Action
    fields: list[FieldChange] = field(default_factory=list)
    desired: Resource | None = None
    live: Resource | None = None


def compare(desired: dict[Key, Resource], live: dict[Key, Resource]) -> list[Change]:
    """What applying ``desired`` over ``live`` does, one :class:`Change` per resource, in apply order."""
    changes = []
    for key in sorted(desired.keys() | live.keys(), key=lambda k: k.sort_key):
        want, have = desired.get(key), live.get(key)
        if have is None and want is not None:
            changes.append(Change(key, Action.CREATE, [], want, None))
        elif want is None and have is not None:
            changes.append(Change(key, Action.DELETE, [], None, have))
        elif want is not None and have is not None:
            diff = field_diff(have.spec, want.spec, ".spec")
            changes.append(Change(key, Action.CHANGE if diff else Action.UNCHANGED, diff, want, have))
    return changes
