"""Test-wide settings: fast compiles, and where the shared real data lives.

Tests run on CPU with 2 cores in CI; most of their time would go to XLA optimizing tiny
graphs, so optimizations are off (results are the same, compiles are several times faster).
"""

from pathlib import Path

import jax

jax.config.update("jax_platforms", "cpu")
jax.config.update("jax_disable_most_optimizations", True)

# Tests may read the real public data beside the checkout; the package never does.
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
