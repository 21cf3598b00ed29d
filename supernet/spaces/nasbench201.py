"""NAS-Bench-201 (NATS-Bench topology) cell space: 6 edges x 5 operations = 15,625 cells.

Dong & Yang, "NAS-Bench-201: Extending the Scope of Reproducible Neural Architecture
Search", ICLR 2020. A cell is a DAG on 4 nodes; edge `j -> i` (j < i) carries one op. The
vector holds the 6 edges in the order of the public `arch_str`
`|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`: (1<-0), (2<-0), (2<-1), (3<-0), (3<-1), (3<-2).

The public *index* (the row order of the benchmark files) is not lexicographic: the
benchmark enumerated cells with the first edge most significant and the ops in the order
below, then shuffled that list with Python's `random.seed(88); random.shuffle`. We recompute
that permutation (CPython's shuffle is stable across versions), so no table is shipped; a
test checks all 15,625 rows of the public CSV.
"""

from __future__ import annotations

import functools
import itertools
import random
import re

import jax.numpy as jnp
import numpy as np

from supernet.spaces.base import Decision, SearchSpace

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
# (target node, source node) of each edge, in arch_str order.
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
NUM_ARCHS = len(OPS) ** len(EDGES)
_SHUFFLE_SEED = 88
_TOKEN = re.compile(r"^([a-z_0-9]+)~(\d)$")


@functools.cache
def _index_tables() -> tuple[np.ndarray, np.ndarray]:
    """(lex_code of public index i, public index of lex_code c), both int32 [15625]."""
    order = list(range(NUM_ARCHS))  # lex codes, as the benchmark enumerated them
    rng = random.Random(_SHUFFLE_SEED)
    rng.shuffle(order)
    index_to_code = np.asarray(order, np.int32)
    code_to_index = np.empty_like(index_to_code)
    code_to_index[index_to_code] = np.arange(NUM_ARCHS, dtype=np.int32)
    return index_to_code, code_to_index


def format_arch_str(ops) -> str:
    """The public string of a cell given its 6 edge op names, in `EDGES` order."""
    return "|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*ops)


@functools.cache
def arch_str_table() -> dict[str, tuple[int, ...]]:
    """Every cell's `arch_str` -> choice vector: a dict lookup parses large files fast."""
    table = {}
    for vec in itertools.product(range(len(OPS)), repeat=len(EDGES)):
        table[format_arch_str([OPS[i] for i in vec])] = vec
    return table


# Nodes 1 and 2 trade places by permuting the edges (1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2).
_SWAP_NODES_1_2 = np.array([1, 0, 2, 3, 5, 4], np.int32)

_WEIGHTS = np.array([len(OPS) ** (len(EDGES) - 1 - i) for i in range(len(EDGES))], np.int64)


def edges_reaching_output(archs) -> jnp.ndarray:
    """`[n, 6]` bool: the edge's target node sends something on to the output (node 3 always).

    Edges in `EDGES` order (1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2): node 2 reaches the output through
    edge 5, node 1 through edge 4 or through edge 2 into a node 2 that does.
    """
    on = jnp.asarray(archs) != 0
    feeds_2 = on[:, 5]
    feeds_1 = on[:, 4] | (on[:, 2] & feeds_2)
    always = jnp.ones_like(feeds_1)
    return jnp.stack([feeds_1, feeds_2, feeds_2, always, always, always], axis=1)


def edges_fed_by_input(archs) -> jnp.ndarray:
    """`[n, 6]` bool: the edge's source node receives something from the input (node 0 always)."""
    on = jnp.asarray(archs) != 0
    fed_1 = on[:, 0]
    fed_2 = on[:, 1] | (on[:, 2] & fed_1)
    always = jnp.ones_like(fed_1)
    return jnp.stack([always, always, fed_1, always, fed_1, fed_2], axis=1)


class NASBench201Space(SearchSpace):
    """The NAS-Bench-201 cell space (public encodings: `arch_str` and benchmark index)."""

    name = "nasbench201"

    def _build_decisions(self):
        return [Decision(f"edge{dst}<-{src}", OPS) for dst, src in EDGES]

    def config(self):
        return {"ops": list(OPS), "edges": [list(e) for e in EDGES]}

    def functional_form(self, archs):
        """Each cell with its idle edges set to `none` and, where they are interchangeable, nodes 1
        and 2 in a fixed order.

        An edge is idle when its source node receives nothing from the input (every path into
        it has a `none`) or its target node sends nothing to the output; its op then cannot
        change the cell's output (up to a constant that a batch-norm bias could learn). When
        edge 2<-1 is `none`, nodes 1 and 2 are symmetric: the form puts the node with the
        smaller `(op from 0, op to 3)` first. 15,625 cells have 8,765 functional forms. Dong &
        Yang report 6,466 unique topologies after their own isomorphism test; the two rules here
        are local and cheap, and a test checks on every cell that they never merge cells that
        compute different functions.
        """
        a = jnp.asarray(archs, jnp.int32)
        a = jnp.where(edges_reaching_output(a) & edges_fed_by_input(a), a, 0)
        num_ops = len(OPS)
        swap = (a[:, 2] == 0) & (a[:, 0] * num_ops + a[:, 4] > a[:, 1] * num_ops + a[:, 5])
        return jnp.where(swap[:, None], a[:, _SWAP_NODES_1_2], a)

    # ---------------------------------------------------------------- arch_str
    def to_public(self, arch) -> str:
        arch = self.validate(arch)
        if arch.ndim != 1:
            raise ValueError(f"{self.name}: to_public takes one architecture, got shape {arch.shape}")
        return format_arch_str([OPS[i] for i in arch])

    def from_public(self, record: str) -> np.ndarray:
        if not isinstance(record, str):
            raise ValueError(f"{self.name}: expected an arch_str, got {type(record).__name__}")
        nodes = record.split("+")
        if len(nodes) != 3:
            raise ValueError(f"{self.name}: arch_str {record!r} must have 3 nodes separated by '+'")
        arch = []
        for node_i, node in enumerate(nodes, start=1):
            if not (node.startswith("|") and node.endswith("|")):
                raise ValueError(f"{self.name}: node {node_i} of {record!r} must be wrapped in '|'")
            tokens = node[1:-1].split("|")
            if len(tokens) != node_i:
                raise ValueError(f"{self.name}: node {node_i} of {record!r} needs {node_i} inputs, got {len(tokens)}")
            for src, token in enumerate(tokens):
                m = _TOKEN.match(token)
                if not m or int(m.group(2)) != src:
                    raise ValueError(f"{self.name}: token {token!r} in {record!r} must be 'op~{src}'")
                if m.group(1) not in OPS:
                    raise ValueError(f"{self.name}: unknown op {m.group(1)!r} in {record!r}; ops are {list(OPS)}")
                arch.append(OPS.index(m.group(1)))
        return np.asarray(arch, np.int32)

    # ---------------------------------------------------------------- benchmark index
    def to_index(self, archs) -> np.ndarray:
        """Public NAS-Bench-201 index of each architecture (`[n]` or a scalar array)."""
        archs = self.validate(archs)
        codes = archs.astype(np.int64) @ _WEIGHTS
        return _index_tables()[1][codes]

    def from_index(self, index) -> np.ndarray:
        """Architectures `[n, 6]` (or `[6]`) of public NAS-Bench-201 indices."""
        index = np.asarray(index)
        if np.any((index < 0) | (index >= NUM_ARCHS)):
            raise ValueError(f"{self.name}: index must be in 0..{NUM_ARCHS - 1}, got {index}")
        codes = _index_tables()[0][index]
        digits = (codes[..., None] // _WEIGHTS) % len(OPS)
        return digits.astype(np.int32)

    def enumerate(self) -> np.ndarray:
        """All 15,625 cells as `int32 [15625, 6]`, in public index order."""
        return self.from_index(np.arange(NUM_ARCHS))
