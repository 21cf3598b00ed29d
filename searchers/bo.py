"""Bayesian optimization: a GP over the one-hot encoding, expected improvement, ParEGO for m > 1.

Surrogate. A zero-mean Gaussian process on standardized objectives with an ARD kernel on the
space's one-hot features `x = space.encode(a)`, one inverse lengthscale `theta_d >= 0` per decision:

    k(a, a') = s^2 exp(-sum_d theta_d [a_d != a'_d])          (overlap / Hamming kernel)
             = s^2 exp(-1/2 sum_f w_f (x_f - x'_f)^2),  w_f = theta_{decision(f)}

i.e. an RBF on the one-hot features, which for one-hot vectors is the weighted Hamming kernel
(every mismatched decision moves two features by 1). Hyperparameters `(s^2, noise, theta)` are
fit by a few Adam steps on the negative log marginal likelihood (Rasmussen & Williams 2006,
eq. 2.30), warm-started from the previous `ask`:

    -log p(y | X) = 1/2 y^T (K + noise I)^-1 y + sum_i log L_ii + n/2 log 2 pi

Acquisition. Expected improvement for minimization (Jones, Schonlau & Welch 1998), with the
posterior mean `mu`, standard deviation `sigma` and the best observed value `f*`:

    EI(a) = (f* - mu) Phi(z) + sigma phi(z),   z = (f* - mu) / sigma

maximized over a fixed-size candidate pool: `pool_size / 2` uniform samples plus one- and
two-point mutations of the `num_parents` best observed architectures (canonicalized, and never
one already observed or a duplicate within the pool). A batch of `q = batch_size` proposals
is chosen by the kriging believer (Ginsbourger, Le Riche & Carraro 2010): after each pick the
GP is conditioned on its own posterior mean there, which leaves `mu` unchanged and shrinks the
pool's variance by a rank-one update, so the next pick moves away from the first.

Several objectives: ParEGO (Knowles, IEEE TEVC 2006). Each `ask` draws weights `lambda`
uniformly from the simplex (Knowles uses a lattice of weight vectors; a uniform draw covers the
same simplex without a budget-dependent lattice), normalizes each objective to [0, 1] over the
feasible observations and models the augmented Chebyshev scalarization (rho = 0.05):

    f_lambda(a) = max_j lambda_j f~_j(a) + rho sum_j lambda_j f~_j(a)

The normalization `f~` is by default (`normalize="rank"`) each objective's empirical CDF over
the feasible observations (`searchers.pareto.rank_normalize`) rather than Knowles' min-max: on
NAS-Bench-201 a few 10%-accuracy cells otherwise squash the accuracy of every useful cell into
the bottom tenth of [0, 1], and most weight vectors then only trade latency.

Infeasible observations (`+inf`) are kept in the buffer, so they are never proposed again, and
by default (`infeasible="worst"`) enter the GP at the worst feasible scalarized value seen (the
imputation SMAC uses for crashed runs, Hutter et al. 2011): the surrogate learns to steer away
from infeasible regions, such as networks over a latency limit. `infeasible="exclude"` leaves
them out of the fit instead.

Static shapes. The state holds a fixed-capacity buffer (`capacity` rows, a `count`). `ask`
runs the GP on the first `B` rows, where `B` is the smallest of the buckets 64, 128, ..., capacity
that holds `count`; `lax.switch` picks the bucket, so `ask` compiles once and an `ask` with 300
observations factors a 512 x 512 matrix, not 2048 x 2048. Rows that are padding or excluded are
masked to identity rows and zero targets, so they add nothing to the posterior or the
likelihood. Hyperparameters are fit on at most `fit_size` rows (a random subset beyond that).
`tell` stores each distinct (canonical) architecture once; rows beyond `capacity` are dropped,
so size `capacity` at least the evaluation budget. Before `num_initial` observations (or while
none is feasible) `ask` proposes uniform random architectures, the usual initial design.

Speed. After compilation one `ask` with 300 observations (default options, 2 CPU cores) takes
about 0.2-0.4 s when OpenBLAS runs single-threaded, and several seconds when it does not:
jaxlib's CPU Cholesky and triangular solves call scipy's OpenBLAS, whose spinning worker threads
fight XLA's own thread pool for the two cores. Set `OPENBLAS_NUM_THREADS=1` in the environment
of any process that runs BO (it must be set before scipy's LAPACK is first loaded).

Example:
    >>> from supernet.spaces import get_space
    >>> searcher = make(get_space("nasbench201"), num_objectives=2, batch_size=4)
    >>> state = searcher.init(jax.random.key(0))
    >>> archs, state = searcher.ask(state, jax.random.key(1))           # [4, 6] int32
    >>> state = searcher.tell(state, archs, objectives)                 # [4, 2], minimized
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np
import optax
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from searchers.base import Searcher
from searchers.pareto import chebyshev, rank_normalize
from supernet.spaces.base import SearchSpace

INFEASIBLE_MODES = ("worst", "exclude")
PAREGO_RHO = 0.05
# Floor of the noise variance (targets are standardized to unit variance): float32 Cholesky of
# a few hundred strongly correlated rows needs a jitter of this order to stay positive definite.
NOISE_FLOOR = 1e-4
_LOG_BOUNDS = {  # projected after every Adam step; keeps the fit away from degenerate kernels
    "log_signal": (math.log(0.05), math.log(20.0)),
    "log_noise": (math.log(NOISE_FLOOR), math.log(1.0)),
    "log_theta": (math.log(1e-3), math.log(20.0)),
}


class GPParams(NamedTuple):
    """Kernel hyperparameters in log space (unconstrained for Adam)."""

    log_signal: Float[Array, ""]  # log s^2
    log_noise: Float[Array, ""]  # log noise variance
    log_theta: Float[Array, "d"]  # log inverse lengthscale per decision


class BOState(NamedTuple):
    """Observation buffer and warm-start hyperparameters (fixed shapes, checkpointable)."""

    archs: Int[Array, "capacity d"]  # canonical architectures; rows >= count are padding
    objectives: Float[Array, "capacity m"]  # as told; +inf in every column = infeasible
    count: Int[Array, ""]  # filled rows
    gp: GPParams  # last fitted hyperparameters


# ---------------------------------------------------------------------------- GP
def init_gp_params(num_decisions: int) -> GPParams:
    """Unit signal, noise 1e-2, and `theta = 3/d`: a random pair (~d mismatches) correlates ~e^-3."""
    f32 = lambda v: jnp.asarray(v, jnp.float32)
    log_theta = jnp.full((num_decisions,), math.log(3.0 / num_decisions), jnp.float32)
    return GPParams(f32(0.0), f32(math.log(1e-2)), log_theta)


def kernel(p: GPParams, fa: Float[Array, "a f"], fb: Float[Array, "b f"],
           feature_decision: Int[Array, "f"]) -> Float[Array, "a b"]:
    """`s^2 exp(-sum_d theta_d [a_d != b_d])` on one-hot features (module docstring).

    With exactly one hot feature per decision, the weighted mismatch count is
    `sum_d theta_d - sum_f w_f x_f x'_f`, one matmul.
    """
    theta = jnp.exp(p.log_theta)
    mismatch = theta.sum() - (fa * theta[feature_decision]) @ fb.T
    return jnp.exp(p.log_signal - jnp.maximum(mismatch, 0.0))


def _masked_gram(p, feats, mask, feature_decision, extra_jitter=0.0):
    """`K + noise I` on valid rows, identity on masked rows (they decouple from everything)."""
    k = kernel(p, feats, feats, feature_decision)
    both = mask[:, None] & mask[None, :]
    eye = jnp.eye(feats.shape[0], dtype=k.dtype)
    return jnp.where(both, k, 0.0) + eye * jnp.where(mask, jnp.exp(p.log_noise) + extra_jitter, 1.0)


def gp_neg_log_likelihood(p: GPParams, feats, y, mask, feature_decision) -> Float[Array, ""]:
    """Negative log marginal likelihood per valid row; masked rows contribute exactly 0."""
    chol = jnp.linalg.cholesky(_masked_gram(p, feats, mask, feature_decision))
    y = jnp.where(mask, y, 0.0)
    alpha = jsl.cho_solve((chol, True), y)
    n = jnp.maximum(mask.sum(), 1)
    nll = 0.5 * y @ alpha + jnp.log(jnp.diagonal(chol)).sum() + 0.5 * n * jnp.log(2 * jnp.pi)
    return nll / n


def _project(p: GPParams) -> GPParams:
    return GPParams(*(jnp.clip(v, *_LOG_BOUNDS[name]) for name, v in zip(GPParams._fields, p)))


def gp_nll_grad(p: GPParams, feats, y, mask, feature_decision) -> GPParams:
    """Gradient of `gp_neg_log_likelihood` in closed form (Rasmussen & Williams 2006, eq. 5.9):

        d nll / d psi = 1/2 tr((K^-1 - alpha alpha^T) dK/dpsi),   alpha = K^-1 y

    with `dK/dlog s^2 = K_s` (the noise-free kernel), `dK/dlog noise = noise I` and
    `dK/dlog theta_d = -theta_d K_s * M_d` (`M_d`: pairs that differ in decision `d`). Why not
    `jax.grad`: reverse mode through a Cholesky makes ~7 LAPACK calls per step, this makes 2
    (one factorization, one triangular inverse), and on a small shared CPU each LAPACK call
    pays a thread hand-off that dominates the arithmetic.
    """
    n = feats.shape[0]
    both = mask[:, None] & mask[None, :]
    k_s = jnp.where(both, kernel(p, feats, feats, feature_decision), 0.0)
    noise = jnp.exp(p.log_noise)
    chol = jnp.linalg.cholesky(k_s + jnp.diag(jnp.where(mask, noise, 1.0)))
    chol_inv = jsl.solve_triangular(chol, jnp.eye(n, dtype=chol.dtype), lower=True)
    k_inv = chol_inv.T @ chol_inv
    alpha = k_inv @ jnp.where(mask, y, 0.0)
    g = (k_inv - jnp.outer(alpha, alpha)) * k_s  # masked rows and columns are 0 in k_s
    # sum_ij g_ij [a_i,d == a_j,d] = sum over decision d's features f of (X^T g X)_ff.
    same = jax.ops.segment_sum((feats * (g @ feats)).sum(0), feature_decision, num_segments=p.log_theta.shape[0])
    count = jnp.maximum(mask.sum(), 1)
    return GPParams(
        0.5 * g.sum() / count,
        0.5 * noise * jnp.sum(jnp.where(mask, jnp.diagonal(k_inv), 0.0) - jnp.where(mask, alpha**2, 0.0)) / count,
        -0.5 * jnp.exp(p.log_theta) * (g.sum() - same) / count,
    )


def gp_fit(p0: GPParams, feats, y, mask, feature_decision, steps: int = 30, learning_rate: float = 0.1) -> GPParams:
    """`steps` projected Adam steps on `gp_neg_log_likelihood` from `p0` (gradient: `gp_nll_grad`).

    NaN gradients (a failed Cholesky) are zeroed, and a non-finite result falls back to `p0`.
    """
    opt = optax.chain(optax.zero_nans(), optax.adam(learning_rate))

    def step(carry, _):
        p, s = carry
        g = gp_nll_grad(p, feats, y, mask, feature_decision)
        u, s = opt.update(g, s, p)
        return (_project(optax.apply_updates(p, u)), s), None

    p0 = _project(p0)
    (p, _), _ = jax.lax.scan(step, (p0, opt.init(p0)), None, length=steps)
    ok = jnp.all(jnp.array([jnp.all(jnp.isfinite(v)) for v in p]))
    return jax.tree.map(lambda a, b: jnp.where(ok, a, b), p, p0)


class Posterior(NamedTuple):
    """A GP conditioned on `(feats, y)` under `mask`: Cholesky factor and `alpha = K^-1 y`."""

    params: GPParams
    feats: Float[Array, "b f"]
    mask: Bool[Array, "b"]
    chol: Float[Array, "b b"]
    alpha: Float[Array, "b"]
    noise: Float[Array, ""]


def gp_condition(p: GPParams, feats, y, mask, feature_decision) -> Posterior:
    """Factor the masked Gram matrix; if float32 Cholesky fails, retry with 1e-2 more jitter."""
    chol = jnp.linalg.cholesky(_masked_gram(p, feats, mask, feature_decision))
    chol, jitter = jax.lax.cond(
        jnp.all(jnp.isfinite(chol)),
        lambda: (chol, jnp.float32(0.0)),
        lambda: (jnp.linalg.cholesky(_masked_gram(p, feats, mask, feature_decision, 1e-2)), jnp.float32(1e-2)),
    )
    alpha = jsl.cho_solve((chol, True), jnp.where(mask, y, 0.0))
    return Posterior(p, feats, mask, chol, alpha, jnp.exp(p.log_noise) + jitter)


def gp_predict(post: Posterior, query: Float[Array, "q f"], feature_decision):
    """Posterior mean `k*^T alpha`, latent variance `s^2 - |V|^2` and `V = L^-1 k*` `[b, q]`."""
    kq = jnp.where(post.mask[:, None], kernel(post.params, post.feats, query, feature_decision), 0.0)
    mean = kq.T @ post.alpha
    v = jsl.solve_triangular(post.chol, kq, lower=True)
    var = jnp.maximum(jnp.exp(post.params.log_signal) - jnp.sum(v * v, axis=0), 0.0)
    return mean, var, v


def expected_improvement(mean: Float[Array, "q"], std: Float[Array, "q"], best) -> Float[Array, "q"]:
    """EI for minimization, `(f* - mu) Phi(z) + sigma phi(z)`, `z = (f* - mu) / sigma`."""
    std = jnp.maximum(std, 1e-9)
    z = (best - mean) / std
    return (best - mean) * jax.scipy.stats.norm.cdf(z) + std * jax.scipy.stats.norm.pdf(z)


# ---------------------------------------------------------------------------- ParEGO
def parego_scalarize(objectives: Float[Array, "n m"], feasible: Bool[Array, "n"], weights: Float[Array, "m"],
                     rho: float = PAREGO_RHO) -> Float[Array, "n"]:
    """Augmented Chebyshev `max_j w_j f~_j + rho sum_j w_j f~_j` on [0, 1]-normalized objectives.

    The normalization range is taken over the `feasible` rows; other rows come out as garbage
    (finite) values the caller masks.
    """
    safe = jnp.where(feasible[:, None], objectives, 0.0)
    lo = jnp.min(jnp.where(feasible[:, None], safe, jnp.inf), axis=0)
    hi = jnp.max(jnp.where(feasible[:, None], safe, -jnp.inf), axis=0)
    lo, hi = jnp.where(jnp.isfinite(lo), lo, 0.0), jnp.where(jnp.isfinite(hi), hi, 1.0)
    norm = (safe - lo) / jnp.maximum(hi - lo, 1e-12)
    weighted = norm * weights
    return weighted.max(-1) + rho * weighted.sum(-1)


# ---------------------------------------------------------------------------- searcher
def _buckets(capacity: int, smallest: int = 64, growth: int = 2) -> tuple[int, ...]:
    """`smallest, smallest * growth, ...` below `capacity`, then `capacity`."""
    sizes, b = [], smallest
    while b < capacity:
        sizes.append(b)
        b *= growth
    return (*sizes, capacity)


def _matches(fa, fb, d):
    """`[a, b]` bool: identical architectures (all `d` one-hot features agree; exact in float32)."""
    return (fa @ fb.T) >= d - 0.5


def make(
    space: SearchSpace,
    *,
    num_objectives: int = 1,
    batch_size: int = 4,
    capacity: int = 2048,
    pool_size: int = 1024,
    num_parents: int = 16,
    num_initial: int = 10,
    fit_size: int = 256,
    fit_steps: int = 30,
    fit_learning_rate: float = 0.1,
    infeasible: str = "worst",
    normalize: str = "rank",
) -> Searcher:
    """A GP-EI searcher over `space` (ParEGO when `num_objectives > 1`); jitted `ask`/`tell`.

    `batch_size` proposals per `ask` (kriging believer); `capacity` rows of observation buffer
    (>= the evaluation budget); `pool_size` candidates scored per `ask`, half uniform, half
    mutants of the `num_parents` best; `num_initial` observations drawn uniformly before the
    GP takes over; hyperparameters get `fit_steps` Adam steps (`fit_learning_rate`) on at most
    `fit_size` rows; `infeasible` is `"worst"` (impute) or `"exclude"` (module docstring);
    `normalize` (m > 1) is `"rank"` or `"minmax"`, ParEGO's normalization (module docstring).
    """
    if normalize not in ("rank", "minmax"):
        raise ValueError(f"normalize must be 'rank' or 'minmax', got {normalize!r}")
    if num_objectives < 1:
        raise ValueError(f"num_objectives must be >= 1, got {num_objectives}")
    if infeasible not in INFEASIBLE_MODES:
        raise ValueError(f"infeasible must be one of {INFEASIBLE_MODES}, got {infeasible!r}")
    if capacity < 1 or fit_size < 1 or fit_steps < 0:
        raise ValueError(f"need capacity >= 1, fit_size >= 1, fit_steps >= 0; got {capacity}, {fit_size}, {fit_steps}")
    if not 1 <= batch_size <= pool_size // 2:
        raise ValueError(f"batch_size must be in [1, pool_size / 2 = {pool_size // 2}], got {batch_size}")
    d, m, q, cap = space.num_decisions, num_objectives, batch_size, capacity
    cards = np.asarray(space.cardinalities)
    feature_decision = jnp.asarray(np.repeat(np.arange(d), cards), jnp.int32)
    buckets = _buckets(cap)
    n_random = pool_size // 2

    def init(key: PRNGKeyArray) -> BOState:
        del key  # the initial design is drawn by `ask`
        return BOState(jnp.zeros((cap, d), jnp.int32), jnp.zeros((cap, m), jnp.float32),
                       jnp.asarray(0, jnp.int32), init_gp_params(d))

    def targets(state, key):
        """Scalarized targets `[cap]`, the GP mask and the feasible mask."""
        filled = jnp.arange(cap) < state.count
        feasible = filled & jnp.all(jnp.isfinite(state.objectives), axis=-1)
        if m == 1:
            y = jnp.where(feasible, state.objectives[:, 0], 0.0)
        else:
            weights = jax.random.dirichlet(key, jnp.ones((m,), jnp.float32))
            if normalize == "rank":
                y = chebyshev(rank_normalize(state.objectives, feasible), weights, PAREGO_RHO)
                y = jnp.where(feasible, y, 0.0)
            else:
                y = parego_scalarize(state.objectives, feasible, weights)
        # Worst feasible value (0 when none is feasible: `ask` then stays in the random design).
        worst = jnp.max(jnp.where(feasible, y, -jnp.inf))
        worst = jnp.where(jnp.isfinite(worst), worst, 0.0)
        if infeasible == "worst":
            y, use = jnp.where(feasible, y, worst), filled
        else:
            use = feasible
        y = jnp.where(use, y, 0.0)
        n = jnp.maximum(use.sum(), 1)
        mean = y.sum() / n
        std = jnp.sqrt(jnp.sum(jnp.where(use, (y - mean) ** 2, 0.0)) / n)
        return jnp.where(use, (y - mean) / jnp.maximum(std, 1e-6), 0.0), use, feasible

    def candidate_pool(state, y, feasible, key):
        k_rand, k_m1, k_m2a, k_m2b = jax.random.split(key, 4)
        parents = jax.lax.top_k(jnp.where(feasible, -y, -jnp.inf), min(num_parents, cap))[1]
        n_mut = pool_size - n_random
        base = state.archs[parents[jnp.arange(n_mut) % parents.shape[0]]]
        one = space.mutate(k_m1, base[: n_mut // 2])
        two = space.mutate(k_m2b, space.mutate(k_m2a, base[n_mut // 2:]))
        pool = jnp.concatenate([space.sample(k_rand, n_random), one, two])
        return space.canonical(pool)

    def fit_branch(size):
        def branch(feats, y, use, p0, key):
            # Every usable row when they fit in `size`, else a uniform random subset of them.
            priority = jnp.where(use, 1.0 + jax.random.uniform(key, use.shape), 0.0)
            idx = jax.lax.top_k(priority, size)[1]
            return gp_fit(p0, feats[idx], y[idx], use[idx], feature_decision, fit_steps, fit_learning_rate)

        return branch

    def posterior_branch(size):
        def branch(state, feats, y, use, feasible, pool, p):
            feats, y, use, feasible = feats[:size], y[:size], use[:size], feasible[:size]
            post = gp_condition(p, feats, y, use, feature_decision)
            pool_feats = space.encode(pool)
            mean, var, v = gp_predict(post, pool_feats, feature_decision)
            excluded = _seen(pool_feats, feats, jnp.arange(size) < state.count)
            best = jnp.min(jnp.where(feasible, y, jnp.inf))

            def pick(t, carry):
                var, lowrank, best, taken, picks = carry
                ei = expected_improvement(mean, jnp.sqrt(var), best)
                ei = jnp.where(excluded | taken | jnp.isnan(ei), -jnp.inf, ei)
                j = jnp.argmax(ei)
                # Kriging believer: condition on y_j = mean_j. Column j of the current posterior
                # covariance over the pool, then a rank-one downdate of the variances.
                prior_col = kernel(p, pool_feats, pool_feats[j][None], feature_decision)[:, 0]
                col = prior_col - v.T @ v[:, j] - lowrank.T @ lowrank[:, j]
                u = col / jnp.sqrt(jnp.maximum(col[j], 0.0) + post.noise)
                return (jnp.maximum(var - u * u, 0.0), lowrank.at[t].set(u), jnp.minimum(best, mean[j]),
                        taken.at[j].set(True), picks.at[t].set(j))

            init_carry = (var, jnp.zeros((q, pool_size), jnp.float32), best,
                          jnp.zeros((pool_size,), bool), jnp.zeros((q,), jnp.int32))
            return jax.lax.fori_loop(0, q, pick, init_carry)[-1]

        return branch

    def random_branch(state, feats, y, use, feasible, pool, p):
        # Initial design: the first q uniform samples of the pool not observed yet.
        excluded = _seen(space.encode(pool[:n_random]), feats, jnp.arange(cap) < state.count)
        return jnp.argsort(excluded, stable=True)[:q].astype(jnp.int32)

    def _seen(pool_feats, feats, filled):
        """Pool rows already observed, or repeating an earlier pool row."""
        observed = jnp.any(_matches(pool_feats, feats, d) & filled[None, :], axis=1)
        return observed | _earlier_duplicate(pool_feats, d)

    # Two switches, so that each bucket compiles one branch: the fit works on at most
    # `fit_size` rows, the posterior on every stored row. Fit branches (30 Adam steps through a
    # Cholesky) dominate compile time, so their buckets grow 4x.
    fit_buckets = _buckets(min(fit_size, cap), growth=4)
    fit_branches = [lambda feats, y, use, p0, key: p0] + [fit_branch(b) for b in fit_buckets]
    posterior_branches = [random_branch] + [posterior_branch(b) for b in buckets]

    def bucket_of(sizes, n):
        # The first size >= n, counted from 1 (branch 0 is the no-GP branch).
        return jnp.minimum(1 + jnp.searchsorted(jnp.asarray(sizes), n), len(sizes))

    def ask(state: BOState, key: PRNGKeyArray) -> tuple[Int[Array, "q d"], BOState]:
        k_w, k_pool, k_fit = jax.random.split(key, 3)
        y, use, feasible = targets(state, k_w)
        pool = candidate_pool(state, y, feasible, k_pool)
        feats = space.encode(state.archs)
        use_gp = (state.count >= num_initial) & jnp.any(feasible)
        fit_which = jnp.where(use_gp, bucket_of(fit_buckets, use.sum()), 0)
        p = jax.lax.switch(fit_which, fit_branches, feats, y, use, state.gp, k_fit)
        post_which = jnp.where(use_gp, bucket_of(buckets, state.count), 0)
        picks = jax.lax.switch(post_which, posterior_branches, state, feats, y, use, feasible, pool, p)
        return pool[picks], state._replace(gp=p)

    def tell(state: BOState, archs: Int[Array, "n d"], objectives: Float[Array, "n m"]) -> BOState:
        archs = space.canonical(jnp.asarray(archs, jnp.int32))
        n = archs.shape[0]
        objectives = jnp.asarray(objectives, jnp.float32).reshape(n, m)
        # NaN is refused upstream; treat any non-finite column as infeasible all the same.
        objectives = jnp.where(jnp.all(jnp.isfinite(objectives), -1, keepdims=True), objectives, jnp.inf)
        feats = space.encode(archs)
        filled = jnp.arange(cap) < state.count
        stored = jnp.any(_matches(feats, space.encode(state.archs), d) & filled[None, :], axis=1)
        keep = ~(stored | _earlier_duplicate(feats, d))  # a repeat keeps its first objectives
        pos = state.count + jnp.cumsum(keep) - 1
        pos = jnp.where(keep & (pos < cap), pos, cap)  # index cap is out of bounds: dropped
        return state._replace(
            archs=state.archs.at[pos].set(archs, mode="drop"),
            objectives=state.objectives.at[pos].set(objectives, mode="drop"),
            count=jnp.minimum(state.count + keep.sum(), cap).astype(jnp.int32),
        )

    name = "bo-parego" if m > 1 else "bo"
    return Searcher(name, jax.jit(init), jax.jit(ask), jax.jit(tell), batch_size, m)


def _earlier_duplicate(feats: Float[Array, "n f"], d: int) -> Bool[Array, "n"]:
    """Row `j` repeats some row `i < j`."""
    n = feats.shape[0]
    return jnp.any(_matches(feats, feats, d) & (jnp.arange(n)[:, None] < jnp.arange(n)[None, :]), axis=0)
