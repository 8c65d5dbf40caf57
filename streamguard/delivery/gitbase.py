"""The resources of a folder as they were at a Git revision (``git show <base>:<file>``).

Used offline to find the previous version of a contract: a pull request's base branch in CI, ``HEAD``
when run by hand on uncommitted edits.
"""

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from streamguard.delivery.resources import Key, Resource, parse_document


class GitUnavailableError(RuntimeError):
    """Not a Git checkout, or the revision does not exist."""


@dataclass
class BaseFolder:
    revision: str
    resources: dict[Key, Resource] = field(default_factory=dict)


def _git(cwd: Path, *args: str) -> str:
    try:
        result = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, check=False)
    except FileNotFoundError as error:
        raise GitUnavailableError("git is not installed") from error
    if result.returncode != 0:
        reason = result.stderr.strip().splitlines()
        raise GitUnavailableError(reason[-1] if reason else f"git {args[0]} failed")
    return result.stdout


def folder_at(revision: str, path: Path, default_namespace: str = "default") -> BaseFolder:
    """Every StreamGuard resource under ``path`` at ``revision``; raises :class:`GitUnavailableError`."""
    directory = path if path.is_dir() else path.parent
    directory = directory.resolve()
    top = Path(_git(directory, "rev-parse", "--show-toplevel").strip())
    try:
        commit = _git(directory, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}").strip()
    except GitUnavailableError as error:
        raise GitUnavailableError(f"no commit {revision!r} in {top}") from error
    relative = path.resolve().relative_to(top).as_posix()
    names = _git(top, "ls-tree", "-r", "--name-only", commit, "--", relative or ".").splitlines()
    base = BaseFolder(revision)
    for name in names:
        if not name.endswith((".yaml", ".yml")):
            continue
        text = _git(top, "show", f"{commit}:{name}")
        try:
            docs = [d for d in yaml.safe_load_all(text) if d is not None]
        except yaml.YAMLError:
            continue
        for doc in docs:
            parsed = parse_document(doc, f"{revision}:{name}", default_namespace, Path(name))
            if isinstance(parsed, Resource):
                base.resources[parsed.key] = parsed
    return base
