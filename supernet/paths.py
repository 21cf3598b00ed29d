"""Where hwnas keeps what it can reuse between runs (profiled tables, compiled programs)."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """`$HWNAS_CACHE`, else `$XDG_CACHE_HOME/hwnas`, else `~/.cache/hwnas`."""
    if os.environ.get("HWNAS_CACHE"):
        return Path(os.environ["HWNAS_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hwnas"
