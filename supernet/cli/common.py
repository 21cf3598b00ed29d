"""Small helpers shared by the CLI commands: the user-facing error and table printing."""

from __future__ import annotations

import json
import sys
from typing import Any, Sequence


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], file=None) -> None:
    """A plain, aligned text table (no dependency: it is read by people and by grep)."""
    file = file or sys.stdout
    cells = [[str(h) for h in headers]] + [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for j, row in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip(), file=file)
        if j == 0:
            print("  ".join("-" * w for w in widths), file=file)


def print_json(payload: Any) -> None:
    json.dump(payload, sys.stdout, indent=1, default=_json_default)
    sys.stdout.write("\n")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _json_default(value: Any):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON-serializable: {type(value).__name__}")
