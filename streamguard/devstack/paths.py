"""Where the stack keeps downloads (a per-user cache, keyed by version) and its run state."""

import os
from pathlib import Path


def cache_root() -> Path:
    """Downloads and builds: ``$STREAMGUARD_CACHE`` or ``$XDG_CACHE_HOME/streamguard``."""
    explicit = os.environ.get("STREAMGUARD_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "streamguard"


def run_root() -> Path:
    """Run state of one stack (logs, data, pid files, endpoints): ``$STREAMGUARD_RUN_DIR`` or ``.run/stack``."""
    explicit = os.environ.get("STREAMGUARD_RUN_DIR")
    return Path(explicit) if explicit else Path.cwd() / ".run" / "stack"
