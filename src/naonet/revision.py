"""The code revision a run was made with, recorded beside its results."""

from __future__ import annotations

import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path


@lru_cache(maxsize=1)
def code_revision() -> str:
    """``naonet VERSION`` plus the git commit of the source tree (``+dirty`` when it has
    uncommitted changes) if naonet runs from a git checkout."""
    try:
        version = metadata.version("naonet")
    except metadata.PackageNotFoundError:
        version = "unknown"
    source = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "-C", str(source), "rev-parse", "--short=12", "HEAD"],
                                capture_output=True, text=True, timeout=5, check=True
                                ).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(source), "status", "--porcelain", "--",
                                str(source)], capture_output=True, text=True, timeout=5,
                               check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return f"naonet {version}"
    return f"naonet {version} git {commit}{'+dirty' if dirty else ''}"
