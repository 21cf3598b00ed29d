"""Test-wide settings: fast compiles, and where the shared real data lives.

Tests run on CPU with 2 cores in CI; most of their time would go to XLA optimizing tiny
graphs, so optimizations are off (results are the same, compiles are several times faster).
"""

import os
import tempfile
from pathlib import Path

# Before any LAPACK loads: OpenBLAS threads would fight XLA's pool for 2 cores (searchers/bo.py).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax  # noqa: E402

jax.config.update("jax_platforms", "cpu")
jax.config.update("jax_disable_most_optimizations", True)
# Many tests build the same tiny supernet: compile each program once per machine, not per test.
jax.config.update("jax_compilation_cache_dir", str(Path(tempfile.gettempdir()) / "hwnas-test-jax-cache"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)

# Tests may read the real public data beside the checkout; the package never does.
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def load_script(path, name: str):
    """Import an `experiments/*.py` file as module `name` (scripts are not a package)."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module
