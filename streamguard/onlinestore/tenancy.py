"""Whose keys these are: the **store project**, the one name every online-store key carries.

Feast's key is ``<serialized entity key><project>``, so the namespace can only enter a Feast-compatible
key through the project name. Every key (Feast's hashes, ``sgp:``, ``sg-fresh:``, ``sg-gen:{``, ``sg-cov:{``,
``sgw-hb:{``, the materializer's ``--no-status`` watermark) is built from
``store_project(namespace, spec.project)``, and the Feast repository and registry entries of a namespace's
views use it as their Feast project, so Feast's own ``materialize_incremental`` and online read use the
same keys.

``store_project = f"{project}_{tag}"``, the namespace's **tag** being the namespace with each ``-`` written
``D``: Feast refuses ``-`` in project names (its check runs before it knows the online store), so only
``[A-Za-z0-9_]`` is left. ``spec.project`` is a lower-case identifier starting with a letter
(``[a-z][a-z0-9_]*``) and a namespace a DNS label (``[a-z0-9-]``), so a tag holds no ``_`` and no other
upper-case letter: the text after the last ``_`` is the tag, the tag gives back the namespace, and the mapping
is injective. It is a valid Feast project name (Feast refuses a leading ``_``). Because the tag comes last after
a ``_``, no store project of one namespace ends with a store project of another, which lets Redis ACL key
patterns (:func:`acl_key_patterns`) tell tenants apart:

- ``*_<tag>``: Feast's hashes (the store project is the key's end).
  No other namespace's key ends that way: its Feast keys end with ``_<its tag>``, and every other key ends
  with ``}``, with ``:`` and a view name, which holds no ``_``, or with ``:`` alone (the pane hash).
- ``sg-gen:{<store project>}`` (the marker), ``sg-cov:{<store project>}:*`` and ``sgw-hb:{<store project>}:*``
  per project (the store project is their hash tag, :mod:`streamguard.onlinestore.generation`,
  :mod:`streamguard.onlinestore.window_layout`).
- ``<prefix>:<store project>:*`` per project for the other keys. The pane key puts the store project
  right after ``sgp:`` (the entity comes later) because a pattern with ``*`` in the middle would also match
  another tenant's key whose entity value happens to contain the text.
"""

import re
from collections.abc import Iterable

from streamguard.api.common import NAME_PATTERN, PROJECT_PATTERN
from streamguard.onlinestore.generation import coverage_key, generation_key
from streamguard.onlinestore.window_layout import heartbeat_key

DEFAULT_NAMESPACE = "default"
"""Kubernetes' namespace of a manifest without ``metadata.namespace`` (manifest files, library calls)."""
_NAMESPACE = re.compile(NAME_PATTERN)
_PROJECT = re.compile(PROJECT_PATTERN)
_DASH = "D"
_PREFIXED = (b"sgp:", b"sg-fresh:", b"streamguard:materialize:")
"""Keys that start with ``<prefix><store project>:`` (see the layout modules)."""


def store_project(namespace: str, project: str) -> str:
    """The project every key of ``namespace``'s views with ``spec.project == project`` carries."""
    if not _NAMESPACE.match(namespace) or len(namespace) > 63:
        raise ValueError(f"namespace {namespace!r} is not a DNS label")
    if not _PROJECT.match(project):
        raise ValueError(f"project {project!r} is not a lower-case identifier starting with a letter")
    return f"{project}_{namespace_tag(namespace)}"


def namespace_tag(namespace: str) -> str:
    """The namespace as its keys carry it: ``-`` written ``D`` (``team-a`` -> ``teamDa``)."""
    return namespace.replace("-", _DASH)


def split_store_project(store: str) -> tuple[str, str]:
    """``(namespace, project)`` of a :func:`store_project` (its inverse)."""
    project, sep, tag = store.rpartition("_")
    namespace = tag.replace(_DASH, "-")
    if not sep or store_project(namespace, project) != store:
        raise ValueError(f"{store!r} is not a store project (<project>_<namespace tag>)")
    return namespace, project


def acl_key_patterns(namespace: str, projects: Iterable[str]) -> list[str]:
    """Redis ACL key patterns (without ``~``) admitting exactly the keys of ``namespace``'s ``projects``."""
    patterns = [f"*_{namespace_tag(namespace)}"]
    for project in sorted(set(projects)):
        store = store_project(namespace, project).encode()
        patterns += [(prefix + store + b":*").decode() for prefix in _PREFIXED]
        patterns += [key(store.decode(), "*").decode() for key in (coverage_key, heartbeat_key)]
        patterns.append(generation_key(store.decode()).decode())
    return patterns


ACL_COMMANDS = ("-@all", "+@read", "+@write", "+@connection", "-@dangerous", "+info", "+eval", "+evalsha",
                "+script|load", "+script|exists", "+cluster|slots", "+asking")
"""What StreamGuard's writers and readers need: reads and writes of their keys, the generation and window
scripts (``EVAL``, ``EVALSHA`` and loading them; the scripts call ``INFO``) and ``INFO`` itself, and on a Redis
Cluster the slot table (``CLUSTER SLOTS``) and ``ASKING`` during a slot's migration; nothing ``@dangerous``
(``FLUSHALL``, ``KEYS``, ``CONFIG``, ``DEBUG`` ...) and no functions or ``SCRIPT FLUSH``, which reach beyond the
user's keys. On a cluster the user is set on every node (ACLs are per node)."""


def acl_setuser(user: str, password: str, namespace: str, projects: Iterable[str]) -> list[str]:
    """The arguments of ``ACL SETUSER`` for one namespace's user (``redis-cli ACL SETUSER ...``)."""
    return [
        user,
        "reset",
        "on",
        f">{password}",
        *(f"~{pattern}" for pattern in acl_key_patterns(namespace, projects)),
        "resetchannels",
        *ACL_COMMANDS,
    ]
