"""The `hwnas` command line: parses arguments and calls library functions, nothing more.

Each command group lives in its own module with `register(subparsers)`; the work itself is
in the library, where tests call it directly. Every failure the user can cause (a bad
argument, an unknown name, a malformed file) ends as one readable line and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys

# Before any LAPACK loads: jaxlib's CPU Cholesky calls OpenBLAS, whose spinning threads fight
# XLA's own pool for the cores (one BO proposal: 0.2 s single-threaded, 2-4 s on 2 cores).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from supernet.cli import costs_cmd, demo_cmd, derive_cmd, profile_cmd, search_cmd, spaces_cmd, train_cmd
from supernet.cli.common import CLIError


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump
        raise CLIError(f"{message} (see '{self.prog} --help')")


COMMANDS = (demo_cmd, spaces_cmd, profile_cmd, costs_cmd, train_cmd, derive_cmd, search_cmd)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="hwnas", description="Hardware-aware neural architecture search in JAX.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    _persistent_compile_cache()
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


def _persistent_compile_cache() -> None:
    """Keep compiled XLA programs across invocations (`$HWNAS_CACHE/jax`, default ~/.cache/hwnas/jax).

    A supernet's training step takes tens of seconds to compile on CPU and is the same
    program every time a command runs the same experiment; with the cache a rerun starts at
    once. Left alone when the caller configured a cache already; `HWNAS_JAX_CACHE=0` disables.
    """
    import jax

    if os.environ.get("HWNAS_JAX_CACHE") == "0" or jax.config.jax_compilation_cache_dir:
        return
    from supernet.paths import default_cache_dir

    jax.config.update("jax_compilation_cache_dir", str(default_cache_dir() / "jax"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
