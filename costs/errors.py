"""Errors that point at a place in a file: path, 1-based line (header = line 1) and column."""

from __future__ import annotations

import os


class LocatedError(ValueError):
    """A defect of a data file, located: `path`, `line` and `column` are attributes so tools
    can point at the spot; `line` or `column` is None when the defect has no single place."""

    def __init__(self, path: str | os.PathLike, problem: str, line: int | None = None, column: str | None = None):
        self.path, self.line, self.column, self.problem = str(path), line, column, problem
        where = [str(path)]
        if line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column {column!r}")
        super().__init__(f"{', '.join(where)}: {problem}")

    def __reduce__(self):
        # Rebuild from the parts (the default would pass only the message to __init__).
        return type(self), (self.path, self.problem, self.line, self.column)
