"""The `hwnas` command line: parses arguments and calls library functions, nothing more.

Each command group lives in its own module with `register(subparsers)`; the work itself is
in the library, where tests call it directly. Every failure the user can cause (a bad
argument, an unknown name, a malformed file) ends as one readable line and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys

from supernet.cli import derive_cmd, profile_cmd, spaces_cmd, train_cmd
from supernet.cli.common import CLIError


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump
        raise CLIError(f"{message} (see '{self.prog} --help')")


COMMANDS = (spaces_cmd, profile_cmd, train_cmd, derive_cmd)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="hwnas", description="Hardware-aware neural architecture search in JAX.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return int(args.run(args) or 0)
    except CLIError as e:
        print(f"hwnas: error: {e}", file=sys.stderr)
    except (ValueError, FileNotFoundError, KeyError, RuntimeError) as e:
        if os.environ.get("HWNAS_DEBUG"):
            raise
        # Library errors carry a message naming what and where; show it without a traceback.
        text = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"hwnas: error: {text}", file=sys.stderr)
    except KeyboardInterrupt:
        print("hwnas: interrupted", file=sys.stderr)
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
