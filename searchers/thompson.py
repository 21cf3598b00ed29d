"""Thompson sampling with a Bayesian linear model over pairwise features; hypervolume selection.

Surrogate (the model of BOCS: Baptista & Poloczek, "Bayesian Optimization of Combinatorial
Structures", ICML 2018, with a Gaussian instead of a horseshoe prior). Each objective is linear
in the one-hot choices and in the one-hot *pairs* of choices:

    f_j(a) = w_j . phi(a),   phi(a) = [1, 1[a_i = c] for all i, c, 1[a_i = c, a_k = c'] for i < k, c, c']

Pairs matter because costs and accuracy are not additive over decisions: on NAS-Bench-201 an
edge whose input node is cut off by `none` ops costs nothing, whatever its op (with pairs, a
least-squares fit of latency in ms over all 15,625 cells reaches R^2 0.96 on the Raspberry Pi
4, against 0.90 without). When the pair features would exceed `max_features` (FBNet: 22
decisions of 9 choices, 18,711 pairs) only the one-hot choices are used. The prior is
`w ~ N(0, s^2 / alpha I)` and the noise `N(0, s^2)`, so the posterior is Gaussian with

    A = Phi^T Phi + alpha I,   mean  mu = A^-1 Phi^T y,   covariance  s^2 A^-1,

and `s^2` is the residual variance at `mu` (at least `min_noise`).

Two views of a cell. Where the space defines a functional form coarser than its canonical
one (`SearchSpace.functional_form`: on NAS-Bench-201, idle edges set to `none` and
interchangeable nodes ordered), each objective is fitted both on the cells as built and on
their functional forms, and each `ask` uses, per objective, the view with the smaller
leave-one-out error over the told rows. Accuracy depends on what the cell computes, so its
evidence pools over the cells that compute the same thing. Latency depends on which ops the
device runs: on HW-NAS-Bench's Samsung A50 and Eyeriss every idle conv adds time, and TFLite on
the Pixel 3 and Raspberry Pi 4 drops the ops that reach no output but still runs those fed by
zeros; either way the cell as built predicts it better. Offline, fitted on 300 random cells,
the Spearman correlation of the predicted with the true validation accuracy among the 1,000
most accurate cells rises from 0.30 to 0.42 in the functional view, while the latency ranking
there falls from 0.87 to 0.82 on the Pixel 3 and from 0.89 to 0.79 on the Samsung A50;
cross-validation picks those views from about 50 rows.
Once a told row is infeasible (`+inf`), every objective stays in the view as built: the
imputed rows carry a hard constraint, which is on a cost. The targets `y` are each
objective's normal scores over the told rows, `Phi^-1((rank + 1/2) / n)`: a rank transform
makes the fit indifferent to the 10%-accuracy cells of NAS-Bench-201 and to units, and
dominance is unchanged by it. Infeasible rows (`+inf`) are fitted at the worst feasible score,
so the model learns to steer away from them (the imputation of `searchers.bo`).

Acquisition: Thompson sampling (Thompson 1933; for BO, Kandasamy et al., AISTATS 2018). Each
proposal draws one `w_j` per objective from the posterior, `w = mu + s L^-T z` with `A = L L^T`,
`z ~ N(0, I)`, predicts every candidate of a pool, and proposes the one the draw values most:

- one objective: the smallest predicted value;
- two objectives: the largest hypervolume improvement of the predicted point over the told
  front (in the normal-score plane, reference point 0.1 beyond the worst told score), the
  selection of TSEMO (Bradford, Schweidtmann & Lapkin, J. Global Optim. 2018); when no candidate
  improves it, the one closest to the front by the additive epsilon indicator
  `min_f max_j (p_j - f_j)`;
- three or more: the smallest augmented Chebyshev scalarization of the prediction with weights
  drawn uniformly from the simplex (random scalarizations: Paria, Kandasamy & Poczos, UAI 2019).

The pool has `pool_size` rows: a share `mutation_share` (3/4) of one- or two-decision mutations
of the told Pareto front (the best rows for one objective), the rest uniform draws; told rows
and duplicates are never proposed.
The first `num_initial` proposals (and any before a feasible row is told) are uniform draws.

On NAS-Bench-201 (ten devices, 10 seeds, the Pareto task of `experiments/searchers.py`;
`experiments/results/searchers.md`) the median over devices of the per-device median
hypervolume ratio is 0.891 / 0.940 / 0.989 / 0.999 at 50 / 100 / 300 / 1,000 evaluations, the
best of our searchers at every budget (TPE: 0.838 / 0.924 / 0.976 / 0.993). Its weakest device
is the Pixel 3, 0.955 at 300: given the table's exact latencies in place of its latency model
(an oracle, seeds 10-19) it reaches 0.984 there; with the prediction of a pairs model fitted on
the log latencies of all 11,046 cells of at least 85% accuracy (far more rows than a search
has) it reaches 0.972. The Pixel 3's latencies are noisy (the 125 cells whose only live edge
is one 3x3 conv from the input run the same graph, as TFLite drops the ops that reach no
output, and measure a median of 7.96 ms, but 36% of them more than 10% away from it, from 5.8
to 16.3 ms). The true front keeps the luckiest measurement of each such graph (its cells from
classes of more than one measure a median 0.73 times their class median): a searcher that found
every graph of the front and measured one random cell of each would score a median of 0.960
there, two cells of each 0.975 (`experiments/latency_lottery.py`). Hunting that luck does not
pay at 300 evaluations (seeds 10-19): proposing, on every 4th `ask` after 100, an unseen cell
that runs the same TFLite graph as one of the fastest half of the told front lowered the Pixel 3
from 0.949 to 0.941 (every 8th, with the functional form as the class: 0.946), because those
proposals are taken from the search for the front's graphs and most draws land near their
class median.
With one objective (the benchmark's constrained task) it is not better than TPE at small
budgets: median regret 1.20 / 0.95 / 0.43 points at 50 / 100 / 300 (TPE 1.12 / 0.87 / 0.47).
Chosen on seeds 10-19, not on the reporting seeds 0-9: the pool's mutation share, 3/4 (1/2
gave 0.868 / 0.930 / 0.980 up to 300, 3/4 gave 0.879 / 0.944 / 0.981), and the functional view
(0.895 / 0.955 / 0.986 with it, 0.879 / 0.944 / 0.981 without; on seeds 20-39 at 300 it moved
the Raspberry Pi 4 from 0.954 to 0.968, the Xeon Silver 4114 from 0.964 to 0.983, the GTX 1080
Ti from 0.956 to 0.985 and left the Pixel 3 at 0.953-0.955).

State: the told architectures, objectives and keys (`searchers.memory.Archive`, `capacity`
rows; size it to the evaluation budget) and the Gram matrix `Phi^T Phi` of each view, which
`tell` updates with the rows it appends, so `ask` and `tell` are jitted with fixed shapes and
the state checkpoints. One `ask` costs, per view, a `p x p` Cholesky factorization and the
inverse behind the leave-one-out leverages (`p` = 406 features on NAS-Bench-201), and
`O((pool + capacity) p)` for the targets and predictions; on 2 CPU cores, at capacity 1,024,
about 11 ms with two views (5 ms with one), so a search of 300 evaluations takes about 6 s.

Example:
    >>> searcher = make(get_space("nasbench201"), num_objectives=2)
    >>> state = searcher.init(jax.random.key(0))
    >>> archs, state = searcher.ask(state, jax.random.key(1))           # [1, 6] int32
    >>> state = searcher.tell(state, archs, objectives)                 # [1, 2], minimized
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from searchers.base import Searcher
from searchers.memory import Archive, arch_keys, archive_add, archive_init, earlier_duplicate, keys_in
from searchers.pareto import non_dominated_mask, rank_normalize
from supernet.spaces.base import SearchSpace


class ThompsonState(NamedTuple):
    """The told rows and the Gram matrix of their features (fixed shapes, checkpointable)."""

    archive: Archive  # every told architecture, its objectives and keys
    gram: Float[Array, "v p p"]  # Phi^T Phi over the archive's rows in each view, updated by `tell`


class FeatureMap:
    """`phi(a)`: a constant, the one-hot choices and (optionally) the one-hot pairs of choices.

    Each architecture sets exactly `1 + d (+ d(d-1)/2)` features; `columns(archs)` gives their
    indices, so `phi` is built by one scatter and the layout is fixed at construction.
    """

    def __init__(self, cards, pairs: bool):
        cards = [int(c) for c in cards]
        self.single_offsets = np.concatenate([[1], 1 + np.cumsum(cards)[:-1]]).astype(np.int32)
        size = 1 + sum(cards)
        self.pairs = list(itertools.combinations(range(len(cards)), 2)) if pairs else []
        offsets = []
        for i, k in self.pairs:
            offsets.append(size)
            size += cards[i] * cards[k]
        self.pair_offsets = np.asarray(offsets, np.int32)
        self.pair_radix = np.asarray([cards[k] for _, k in self.pairs], np.int32)
        self.size = size

    @staticmethod
    def size_of(cards, pairs: bool) -> int:
        cards = [int(c) for c in cards]
        return 1 + sum(cards) + (sum(a * b for a, b in itertools.combinations(cards, 2)) if pairs else 0)

    def columns(self, archs: Int[Array, "n d"]) -> Int[Array, "n k"]:
        cols = [jnp.zeros((archs.shape[0], 1), jnp.int32), archs + jnp.asarray(self.single_offsets)]
        if self.pairs:
            first = archs[:, [i for i, _ in self.pairs]]
            second = archs[:, [k for _, k in self.pairs]]
            cols.append(jnp.asarray(self.pair_offsets) + first * jnp.asarray(self.pair_radix) + second)
        return jnp.concatenate(cols, axis=1)

    def __call__(self, archs: Int[Array, "n d"]) -> Float[Array, "n p"]:
        cols = self.columns(archs)
        rows = jnp.arange(archs.shape[0])[:, None]
        return jnp.zeros((archs.shape[0], self.size), jnp.float32).at[rows, cols].set(1.0)


def normal_scores(objectives: Float[Array, "n m"], filled: Bool[Array, "n"]) -> Float[Array, "n m"]:
    """Each column's normal scores `Phi^-1((rank + 1/2) / n)` over the feasible filled rows (ties
    share the lower rank); infeasible filled rows get the worst feasible score, the rest 0."""
    feasible = filled & jnp.all(jnp.isfinite(objectives), axis=-1)
    n = jnp.maximum(feasible.sum(), 1).astype(jnp.float32)
    below = rank_normalize(objectives, filled) * jnp.maximum(n - 1.0, 1.0)  # strictly smaller, per column
    scores = jax.scipy.special.ndtri((jnp.where(feasible[:, None], below, 0.0) + 0.5) / n)
    worst = jnp.max(jnp.where(feasible[:, None], scores, -jnp.inf), axis=0)
    scores = jnp.where(feasible[:, None], scores, jnp.where(jnp.isfinite(worst), worst, 0.0))
    return jnp.where(filled[:, None], scores, 0.0)


class LinearPosterior(NamedTuple):
    """`N(mean, noise A^-1)` per objective, with `A = chol chol^T` (module docstring)."""

    mean: Float[Array, "p m"]
    chol: Float[Array, "p p"]
    noise: Float[Array, "m"]


def linear_posterior(phi: Float[Array, "n p"], gram: Float[Array, "p p"], y: Float[Array, "n m"],
                     filled: Bool[Array, "n"], alpha: float, min_noise: float) -> LinearPosterior:
    """The Bayesian linear posterior of every objective, fitted on the filled rows (`gram` is
    `Phi^T Phi` over them, kept by the caller: recomputing it is the costly part)."""
    phi = jnp.where(filled[:, None], phi, 0.0)
    y = jnp.where(filled[:, None], y, 0.0)
    chol = jnp.linalg.cholesky(gram + alpha * jnp.eye(phi.shape[1], dtype=phi.dtype))
    mean = jsl.cho_solve((chol, True), phi.T @ y)
    n = filled.sum().astype(jnp.float32)
    noise = jnp.maximum(jnp.sum((y - phi @ mean) ** 2, axis=0) / jnp.maximum(n - 1.0, 1.0), min_noise)
    return LinearPosterior(mean, chol, noise)


def leave_one_out_error(columns: Int[Array, "n k"], post: LinearPosterior, y: Float[Array, "n m"],
                        filled: Bool[Array, "n"]) -> Float[Array, "m"]:
    """Sum over the filled rows of each objective's squared leave-one-out residual at the
    posterior mean, `sum_i ((y_i - phi_i mu) / (1 - h_i))^2` with `h_i = phi_i^T A^-1 phi_i` (the
    ridge regression identity; Allen, Technometrics 1974). `phi_i` is 0/1 with its ones at
    `columns[i]`, so `phi_i mu` and `h_i` are sums of gathered entries of `mu` and `A^-1`."""
    inverse = jsl.cho_solve((post.chol, True), jnp.eye(post.chol.shape[0], dtype=post.chol.dtype))
    leverage = jnp.sum(inverse[columns[:, :, None], columns[:, None, :]], axis=(1, 2))
    residual = (y - jnp.sum(post.mean[columns], axis=1)) / (1.0 - leverage)[:, None]
    return jnp.sum(jnp.where(filled[:, None], residual, 0.0) ** 2, axis=0)


def fit_views(features: FeatureMap, views: Int[Array, "v n d"], grams: Float[Array, "v p p"], y: Float[Array, "n m"],
              filled: Bool[Array, "n"], feasible: Bool[Array, "n"], alpha: float,
              min_noise: float) -> tuple[list[LinearPosterior], Int[Array, "m"]]:
    """The posterior of every objective in each view of the rows (`views[v]`: the rows as the
    v-th view sees them, `views[0]` as built), and for each objective the view with the smallest
    leave-one-out error (the model chosen by cross-validation, per objective). Once a filled row
    is infeasible, every objective takes view 0: the imputed rows carry a hard constraint, which
    is on a cost, and a device pays for idle ops."""
    posts = [linear_posterior(features(rows), gram, y, filled, alpha, min_noise) for rows, gram in zip(views, grams)]
    if len(posts) == 1:
        return posts, jnp.zeros((y.shape[1],), jnp.int32)
    errors = jnp.stack([leave_one_out_error(features.columns(rows), post, y, filled) for rows, post in zip(views, posts)])
    return posts, jnp.where(jnp.any(filled & ~feasible), 0, jnp.argmin(errors, axis=0))


def posterior_draw(key: PRNGKeyArray, post: LinearPosterior) -> Float[Array, "p m"]:
    """One weight vector per objective from the posterior: `mean + sqrt(noise) L^-T z`."""
    z = jax.random.normal(key, post.mean.shape, post.mean.dtype)
    return post.mean + jnp.sqrt(post.noise) * jsl.solve_triangular(post.chol.T, z, lower=False)


def hypervolume_improvement_2d(front: Float[Array, "f 2"], on_front: Bool[Array, "f"], points: Float[Array, "c 2"],
                               reference: Float[Array, "2"]) -> Float[Array, "c"]:
    """Exact hypervolume each point alone adds to the front's (minimization, 2 objectives).

    The front's staircase `h(x) = min(r_1, min{f_1 : f_0 <= x, f on the front})` is piecewise
    constant between the sorted `f_0`; a point `p` adds `int_{p_0}^{r_0} max(0, h(x) - p_1) dx`.
    """
    f0 = jnp.where(on_front, front[:, 0], jnp.inf)
    order = jnp.argsort(f0)
    f0 = jnp.minimum(f0[order], reference[0])
    f1 = jnp.where(on_front, front[:, 1], reference[1])[order]
    height = jnp.minimum(jax.lax.cummin(jnp.concatenate([reference[1:], f1])), reference[1])  # on [x_k, x_k+1)
    starts = jnp.concatenate([jnp.array([-jnp.inf]), f0])
    ends = jnp.concatenate([f0, reference[:1]])
    lo = jnp.maximum(starts[None, :], points[:, :1])
    width = jnp.clip(jnp.minimum(ends[None, :], reference[0]) - lo, 0.0)
    return jnp.sum(width * jnp.clip(height[None, :] - points[:, 1:], 0.0), axis=1)


def make(
    space: SearchSpace,
    *,
    num_objectives: int = 1,
    batch_size: int = 1,
    pool_size: int = 2048,
    alpha: float = 1.0,
    min_noise: float = 1e-3,
    pairs: bool | None = None,
    max_features: int = 4096,
    num_initial: int = 10,
    capacity: int = 2048,
    mutation_share: float = 0.75,
    functional_view: bool | None = None,
) -> Searcher:
    """A Thompson-sampling searcher over `space` (module docstring); jitted `ask`/`tell`.

    `batch_size` proposals per `ask`, each from its own posterior draw; `pool_size` candidates
    scored per draw; `alpha` the prior precision; `min_noise` the smallest noise variance;
    `pairs` whether to use pair features (default: when the features number at most
    `max_features`); `num_initial` uniform draws first; `capacity` rows of memory (>= the budget);
    `mutation_share` the fraction of the pool that mutates the front (the rest: uniform draws);
    `functional_view` whether each objective may be fitted on `space.functional_form` instead
    (default: when the space defines one finer than `canonical`).
    """
    if num_objectives < 1:
        raise ValueError(f"num_objectives must be >= 1, got {num_objectives}")
    if batch_size < 1 or pool_size < 2 or capacity < 1 or num_initial < 0 or alpha <= 0 or min_noise <= 0:
        raise ValueError(f"need batch_size >= 1, pool_size >= 2, capacity >= 1, num_initial >= 0, alpha > 0 and "
                         f"min_noise > 0; got {batch_size}, {pool_size}, {capacity}, {num_initial}, {alpha}, {min_noise}")
    if not 0.0 < mutation_share < 1.0:
        raise ValueError(f"mutation_share must be in (0, 1), got {mutation_share}")
    cards = np.asarray(space.cardinalities)
    with_pairs = FeatureMap.size_of(cards, True) <= max_features if pairs is None else bool(pairs)
    features = FeatureMap(cards, with_pairs)
    if functional_view is None:
        functional_view = type(space).functional_form is not SearchSpace.functional_form
    # The views of an architecture the model may be fitted on: as built, and its functional form.
    views = (lambda a: a, space.functional_form) if functional_view else (lambda a: a,)

    def in_views(archs: Int[Array, "n d"]) -> Int[Array, "v n d"]:
        """`archs` as each view sees them."""
        return jnp.stack([jnp.asarray(view(archs), jnp.int32) for view in views])
    d, m, q, cap = space.num_decisions, num_objectives, batch_size, capacity
    num_mutants = min(max(int(round(pool_size * mutation_share)), 1), pool_size - 1)  # the rest: uniform
    if pool_size - num_mutants < batch_size:  # the initial design takes the uniform rows
        raise ValueError(f"the pool's {pool_size - num_mutants} uniform rows are fewer than batch_size {batch_size}: "
                         "raise pool_size or lower mutation_share")
    front_rows = min(cap, 256)  # the told front rarely has more rows; beyond them it is truncated

    def candidate_pool(key, parents, num_parents):
        """Uniform draws and one- or two-decision mutations of the first `num_parents` rows of
        `parents`, canonical."""
        k_uni, k_par, k_pos, k_val, k_two = jax.random.split(key, 5)
        uniform = jnp.asarray(space.sample(k_uni, pool_size - num_mutants), jnp.int32)
        mutant = parents[jax.random.randint(k_par, (num_mutants,), 0, jnp.maximum(num_parents, 1))]
        values = jnp.asarray(space.sample(k_val, num_mutants), jnp.int32)
        for t, k in enumerate(jax.random.split(k_pos, 2)):
            at = jax.nn.one_hot(jax.random.randint(k, (num_mutants,), 0, d), d, dtype=bool)
            if t == 1:  # the second mutation, on half of the mutants
                at &= (jax.random.uniform(k_two, (num_mutants,)) < 0.5)[:, None]
            mutant = jnp.where(at, values if t == 0 else jnp.roll(values, 1, axis=0), mutant)
        return jnp.asarray(space.canonical(jnp.concatenate([uniform, mutant])), jnp.int32)

    def value(key, front, on_front, worst, pred):
        """How much one posterior draw values each candidate's predicted objectives (higher: better)."""
        if m == 1:
            return -pred[:, 0]
        if m == 2:
            gain = hypervolume_improvement_2d(front, on_front, pred, worst + 0.1)
            gap = jnp.min(jnp.where(on_front[None, :], jnp.max(pred[:, None, :] - front[None, :, :], axis=-1), jnp.inf),
                          axis=1)
            return jnp.where(gain > 0, gain, -gap)
        weights = jax.random.dirichlet(key, jnp.ones((m,)))
        shifted = pred - jnp.min(jnp.where(on_front[:, None], front, jnp.inf), axis=0)
        return -(jnp.max(weights * shifted, axis=1) + 0.05 * jnp.sum(weights * shifted, axis=1))

    def init(key: PRNGKeyArray) -> ThompsonState:
        del key  # the initial design is drawn by `ask`
        return ThompsonState(archive_init(cap, d, m), jnp.zeros((len(views), features.size, features.size), jnp.float32))

    def ask(state: ThompsonState, key: PRNGKeyArray) -> tuple[Int[Array, "n d"], ThompsonState]:
        k_pool, k_draw, k_value = jax.random.split(key, 3)
        told = state.archive
        filled = jnp.arange(cap) < told.count
        feasible = filled & jnp.all(jnp.isfinite(told.objectives), axis=-1)
        scores = normal_scores(told.objectives, filled)
        on_front = feasible & non_dominated_mask(jnp.where(feasible[:, None], scores, jnp.inf))
        # The front's rows, gathered first into a block of `front_rows` (the candidates are compared
        # with the front only, not with every told row).
        first = jnp.argsort(~on_front, stable=True)[:front_rows]
        front, in_front = scores[first], on_front[first]
        worst = jnp.max(scores, axis=0)
        pool = candidate_pool(k_pool, told.archs[first], on_front.sum())
        keys = arch_keys(space, pool)
        fresh = ~(earlier_duplicate(keys) | keys_in(keys, told.keys))
        posts, view_of = fit_views(features, in_views(told.archs), state.gram, scores, filled, feasible, alpha, min_noise)
        pool_phis = [features(rows) for rows in in_views(pool)]

        def pick(t, chosen):
            k = jax.random.fold_in(k_draw, t)
            preds = jnp.stack([phi @ posterior_draw(k, post) for phi, post in zip(pool_phis, posts)])
            pred = jnp.take_along_axis(preds, view_of[None, None, :], axis=0)[0]
            gain = value(jax.random.fold_in(k_value, t), front, in_front, worst, pred)
            taken = jnp.any(jnp.arange(pool.shape[0])[:, None] == chosen[None, :], axis=1)
            return chosen.at[t].set(jnp.argmax(jnp.where(fresh & ~taken, gain, -jnp.inf)))

        chosen = jax.lax.fori_loop(0, q, pick, jnp.full((q,), -1, jnp.int32))
        warm = (told.count >= num_initial) & jnp.any(feasible)
        # The initial design: uniform rows of the pool, new ones first.
        uniform = jnp.argsort(~fresh[:pool_size - num_mutants], stable=True)[:q]
        return pool[jnp.where(warm, chosen, uniform)], state

    def tell(state: ThompsonState, archs: Int[Array, "n d"], objectives: Float[Array, "n m"]) -> ThompsonState:
        archive = archive_add(space, state.archive, archs, objectives, "thompson")
        # The rows just appended are [old count, new count): add their outer products to the Gram.
        rows = state.archive.count + jnp.arange(archs.shape[0])
        added = archive.archs[jnp.minimum(rows, cap - 1)]
        phis = [features(view_rows) * (rows < archive.count)[:, None] for view_rows in in_views(added)]
        return ThompsonState(archive, state.gram + jnp.stack([phi.T @ phi for phi in phis]))

    return Searcher(name="thompson", init=jax.jit(init), ask=jax.jit(ask), tell=jax.jit(tell), batch_size=q,
                    num_objectives=m)
