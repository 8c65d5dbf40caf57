"""Which namespace owns a registry subject, decided from the StreamingWindows of every namespace (pure).

A StreamingWindow *claims* a subject when the operator's record on it names it (it registered it:
:mod:`streamguard.operator.record`, never ``status.subject``, which the window's workload may write) or its spec
names it
(``spec.contract.subject``, else ``<namespace>.<topic>-value``). Among the claims on one subject, the owner
is the one that registered it, oldest first; when none has, the oldest claim (uid breaks ties). Windows of
the owner's namespace share the subject; a window of any other namespace is refused and must not register,
change or delete anything in it.
"""

from collections.abc import Iterable
from dataclasses import dataclass

from streamguard.api.streamingwindow import default_subject
from streamguard.operator import record
from streamguard.operator.render.common import Manifest


@dataclass(frozen=True)
class Claim:
    namespace: str
    name: str
    uid: str
    created: str
    registered: bool
    """The operator's record on the claimant names the subject (it registered it), not only its spec."""

    @property
    def rank(self) -> tuple[int, str, str]:
        return (0 if self.registered else 1, self.created, self.uid)

    def __str__(self) -> str:
        return f"StreamingWindow {self.namespace}/{self.name}"


def desired_subject(window: Manifest) -> str | None:
    """The subject a StreamingWindow's spec asks for, read without validating the rest of the spec."""
    spec = window.get("spec") or {}
    explicit = (spec.get("contract") or {}).get("subject")
    if explicit:
        return str(explicit)
    topic = (spec.get("source") or {}).get("topic")
    return default_subject(window["metadata"]["namespace"], str(topic)) if topic else None


def registered_subject(window: Manifest) -> str | None:
    """The subject the operator registered for ``window`` (its record); without a record (registered before
    records existed, or never), the one its spec names. Never ``status.subject``, which its workload may write."""
    recorded = record.read(window)
    return recorded.subject if recorded is not None else desired_subject(window)


def claims(subject: str, windows: Iterable[Manifest]) -> list[Claim]:
    """Every claim on ``subject`` among ``windows``, owner first."""
    found = []
    for window in windows:
        meta = window["metadata"]
        recorded = record.read(window)
        registered = recorded is not None and recorded.subject == subject
        if registered or desired_subject(window) == subject:
            found.append(
                Claim(
                    meta["namespace"], meta["name"], meta["uid"], str(meta.get("creationTimestamp") or ""), registered
                )
            )
    return sorted(found, key=lambda claim: claim.rank)


def owned_elsewhere(subject: str, namespace: str, windows: Iterable[Manifest]) -> Claim | None:
    """The owning claim when ``subject`` belongs to a namespace other than ``namespace``; else ``None``."""
    found = claims(subject, windows)
    return found[0] if found and found[0].namespace != namespace else None


def other_users(subject: str, uid: str, windows: Iterable[Manifest]) -> list[Claim]:
    """The claims on ``subject`` of windows other than ``uid`` (in any namespace), owner first."""
    return [claim for claim in claims(subject, windows) if claim.uid != uid]
