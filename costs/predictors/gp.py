"""`gp`: Gaussian-process regression of latency, with an additive cost table inside the kernel.

Model (Rasmussen & Williams, "Gaussian Processes for Machine Learning", MIT Press 2006, "R&W"):
the standardized target t = (g(y) - mu_t) / sd_t, g = identity (default) or log
(`log_target`), is

    t_n = m + f(x_n) + eps_n,   f ~ GP(0, k),   eps_n ~ N(0, s_n^2 (y_n / y_geo)^(2p) / w_n)

on standardized inputs x: the feature set (`costs.features`: one indicator per choice,
optionally analytic costs) and, with `shared`, for every family of decisions that offer the
same choices (NAS-Bench-201's 6 edges, FBNet's 22 layers, OFA's kernel, expand and depth
decisions), how many of them picked each choice (`shared_choice_counts`). The default
kernel is a sum of two kernels (R&W ch. 4):

    k(x, x') = sum_j v_g(j) x_j x'_j                               "linear": an additive table
             + s_f^2 exp(-1/2 sum_j (x_j - x'_j)^2 / l_g(j)^2)      "rbf": ARD squared exponential

The linear part on one-hot inputs is the `lut` model (cost = sum of per-choice costs) with a
Gaussian prior of variance v on each table entry, and on the counts a cost per choice shared
by all decisions of a family: a hierarchical table, "an op costs about the same wherever it
is, up to a per-position deviation", which 1,000 noisy timings pin down better than 30
independent entries. The RBF part adds the interactions that no table expresses (on the
NAS-Bench-201 phones, ops whose output reaches no node are pruned by the runtime). Both
amplitudes are fitted by the marginal likelihood, so a device whose latency *is* additive
gets a small s_f and the model falls back to the table: the evidence decides how much
non-additivity the data supports. Hyperparameters are shared per group g(j) (option `ard`):
"decision" (default) gives all indicators of one decision one length scale and one table
variance, each analytic column its own, each count family its own; "column" gives every
column its own (more freedom, and on 500 points it overfits). `kernel` can also be "rbf",
"matern52" (Matern nu = 5/2), "linear+matern52" or "linear".

The target is latency, not its log, by default: a sum of per-op costs is additive in
milliseconds. The noise is heteroscedastic instead: its std grows as (y / geometric-mean y)^p
with p in [0, 1] fitted (timing noise is roughly proportional to the time measured), which
weights small networks as relative errors do.

Hyperparameters theta = (m, log v, log s_f, log l, log s_n, p) maximize the log marginal
likelihood (R&W sec. 5.4.1)

    log p(t | X, theta) = -1/2 (t - m)^T K_y^-1 (t - m) - 1/2 log|K_y| - n/2 log 2 pi,   K_y = K + S

(S the noise diagonal) with optax's Adam for `steps` steps (the whole loop one jitted
`lax.fori_loop`) through a Cholesky factorization K_y = L L^T (log|K_y| = 2 sum log L_ii).
Each step costs O(n^3), so theta is fitted on a random subset of at most `hyper_size`
training points (default 500); the posterior then conditions on all training points, up to
`max_train` (default 2000, one factorization of a 2000 x 2000 matrix; above it a random
subset of that size, drawn with `seed`, is used and the rest ignored).

Robustness. Whole-network timings have outliers (a run disturbed by another process); under
Gaussian noise one such point bends the whole table. `robust_rounds` rounds of iteratively
reweighted least squares with Huber's weights (Huber 1964) give each point a noise weight
w_n = min(1, c / |z_n|), c = `huber_c`, from its standardized leave-one-out residual, which a
GP gives in closed form (R&W sec. 5.4.2): z_n = ([K_y^-1 r]_n / [K_y^-1]_nn) / sd_-n. The
weights are alternated with theta on the subset (so outliers cannot buy themselves RBF
amplitude) and then recomputed on the full training set.

Prediction (R&W ch. 2): mean m + k_*^T K_y^-1 (t - m), latent variance
k(x_*, x_*) - k_*^T K_y^-1 k_*. `predict` returns g^-1 of the mean (for log targets the
median of the log-normal predictive, not its mean). `predict_std` returns the latent
function's posterior std in the units of `predict`: sd_t * sigma for raw targets, and the
delta-method exp(mu) * sd_t * sigma for log targets; noise excluded, since it is the model's
uncertainty about the cost, not the spread of a new measurement. The mean needs only
k_* . alpha, chunked through one jitted function (100,000 architectures in a few seconds);
the std also solves a triangular system per chunk, O(n_train^2) per architecture.

All arithmetic runs in float64, inside `jax.enable_x64` so the rest of the program keeps
float32: a float32 Cholesky of a kernel matrix with little noise (simulated devices are
exactly additive) loses the digits the posterior mean depends on. On 2-core machines set
OPENBLAS_NUM_THREADS=1 (see searchers/bo.py): jaxlib's CPU Cholesky calls OpenBLAS, whose
threads otherwise fight XLA's, and a fit takes minutes instead of ~20 s.

Options (constructor keywords, saved with the predictor): features ("onehot"), log_target
(False), kernel ("linear+rbf"), ard ("decision"), shared (True), steps (150), lr (0.05),
hyper_size (500), max_train (2000), robust_rounds (3), huber_c (2.0), seed (0).

Example:
    >>> gp = get_predictor("gp", space).fit(archs, y)
    >>> gp.predict(archs[:3]), gp.predict_std(archs[:3])
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from costs.features import FEATURE_SETS, features, one_hot, shared_choice_counts
from costs.predictors.base import Predictor, PredictorError, finite_float, positive

KERNELS = ("linear+rbf", "linear+matern52", "rbf", "matern52", "linear")
_CHUNK = 4096  # rows per jitted cross-kernel call at predict time (one compiled shape)
_JITTER = 1e-8  # added to the noise: keeps the Cholesky defined when the fitted noise -> 0


class GPPredictor(Predictor):
    name = "gp"

    def __init__(self, space, *, features: str = "onehot", log_target: bool = False, kernel: str = "linear+rbf",
                 steps: int = 150, lr: float = 0.05, hyper_size: int = 500, max_train: int = 2000,
                 robust_rounds: int = 3, huber_c: float = 2.0, ard: str = "decision", shared: bool = True,
                 seed: int = 0, metric: str = "latency_ms", device: str = ""):
        super().__init__(space, metric=metric, device=device, features=features, log_target=bool(log_target),
                         kernel=kernel, steps=steps, lr=lr, hyper_size=hyper_size, max_train=max_train,
                         robust_rounds=robust_rounds, huber_c=huber_c, ard=ard, shared=bool(shared), seed=seed)
        who = self.name
        if features not in FEATURE_SETS:
            raise PredictorError(f"{who}: option features must be one of {FEATURE_SETS}, got {features!r}")
        if ard not in ("decision", "column"):
            raise PredictorError(f"{who}: option ard must be 'decision' or 'column', got {ard!r}")
        if kernel not in KERNELS:
            raise PredictorError(f"{who}: option kernel must be one of {KERNELS}, got {kernel!r}")
        for opt, value, low in (("steps", steps, 0), ("hyper_size", hyper_size, 2), ("max_train", max_train, 2),
                                ("robust_rounds", robust_rounds, 0), ("seed", seed, -2**31)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise PredictorError(f"{who}: option {opt} must be an integer >= {low}, got {value!r}")
        finite_float(lr, "lr", who, 0.0)
        finite_float(huber_c, "huber_c", who, 0.0)

    # ------------------------------------------------------------------ fit
    def _design(self, archs: np.ndarray) -> np.ndarray:
        """Raw inputs `[n, f]`: the feature set, then (option `shared`) the choice counts."""
        parts = [features(self.space, archs, self.options["features"]).astype(np.float64)]
        if self.options["shared"]:
            parts.append(one_hot(self.space, archs).astype(np.float64) @ shared_choice_counts(self.space)[0])
        return np.concatenate(parts, axis=1)

    def _inputs(self, archs: np.ndarray) -> np.ndarray:
        return (self._design(archs) - self.x_mean) / self.x_scale

    def _fit(self, archs, y):
        o = self.options
        target = np.log(positive(y, self.name)) if o["log_target"] else y
        rng = np.random.default_rng(o["seed"])
        if len(archs) > o["max_train"]:
            keep = np.sort(rng.choice(len(archs), o["max_train"], replace=False))
            archs, target, y = archs[keep], target[keep], y[keep]
        raw = self._design(archs)
        self.x_mean = raw.mean(0)
        sd = raw.std(0)
        # A choice never seen in training: scale 1 keeps its column 0 now and bounded later.
        self.x_scale = np.where(sd > 1e-6, sd, 1.0)
        self.t_mean, self.t_scale = float(target.mean()), float(target.std()) or 1.0
        x = self._inputs(archs)
        t = (target - self.t_mean) / self.t_scale
        n, f = x.shape
        # log(y / geometric-mean y) of each training point, for the heteroscedastic noise.
        ly = np.log(y) if np.all(y > 0) else np.zeros_like(y)
        log_rel = ly - ly.mean()
        sub = rng.choice(n, min(n, o["hyper_size"]), replace=False)
        with jax.enable_x64(True):
            groups = jnp.asarray(self._groups(f))
            theta = jax.tree.map(jnp.asarray, _init_theta(x[sub], int(groups.max()) + 1, f))
            xs, ts = jnp.asarray(x[sub]), jnp.asarray(t[sub])
            rel = jnp.asarray(log_rel)
            w_sub = jnp.ones(len(sub))
            # Alternate theta and the Huber weights on the subset, so that outliers do not
            # buy themselves RBF amplitude before they are downweighted; later rounds start
            # from the previous theta and need fewer steps.
            for r in range(o["robust_rounds"] + 1 if o["steps"] else 0):
                theta = _fit_theta(theta, groups, xs, ts, w_sub, rel[sub], kernel=o["kernel"],
                                   steps=o["steps"] if r == 0 else max(1, o["steps"] // 3), lr=float(o["lr"]))
                w_sub = self._huber(_posterior(theta, groups, xs, ts, w_sub, rel[sub], kernel=o["kernel"])[2])
            theta = jax.tree.map(np.asarray, theta)
            if not all(np.all(np.isfinite(v)) for v in theta.values()):
                raise PredictorError(f"{self.name}: hyperparameter fit diverged (non-finite); lower lr")
            weights = jnp.ones(n)
            for r in range(o["robust_rounds"] + 1):
                if r:
                    weights = self._huber(z)
                alpha, chol, z = _posterior(theta, groups, jnp.asarray(x), jnp.asarray(t), weights, rel,
                                            kernel=o["kernel"])
            noise = np.asarray(_noise(theta, weights, rel))
        if not np.all(np.isfinite(alpha)):
            raise PredictorError(f"{self.name}: the kernel matrix is not positive definite (Cholesky failed)")
        # The state keeps the noise diagonal, not the n x n factor (8 MB at n = 1000): the
        # mean needs only alpha, and predict_std refactors K_y once, on first use.
        self.theta, self.x_train, self.alpha, self.noise = theta, x, np.asarray(alpha), noise
        self._chol = np.asarray(chol)

    def _groups(self, f: int) -> np.ndarray:
        """Hyperparameter group `int [f]` of every feature column (option `ard`)."""
        if self.options["ard"] == "column":
            return np.arange(f)
        # One group per decision (its choice indicators share a length scale and a table
        # variance), one per extra (analytic) column, one per family of shared-choice counts.
        decision = np.repeat(np.arange(self.space.num_decisions), self.space.cardinalities)
        family = shared_choice_counts(self.space)[1] if self.options["shared"] else np.zeros(0, np.int64)
        extra = np.arange(f - len(decision) - len(family))
        return np.concatenate([decision, self.space.num_decisions + extra,
                               self.space.num_decisions + len(extra) + family])

    def _huber(self, z):
        """Huber's IRLS weights min(1, c / |z|) of standardized residuals `z`."""
        return jnp.minimum(1.0, self.options["huber_c"] / jnp.maximum(jnp.abs(z), 1e-12))

    # ------------------------------------------------------------------ predict
    def _latent(self, archs, with_var: bool):
        x = self._inputs(archs)
        mean, var = np.empty(len(x)), np.empty(len(x))
        with jax.enable_x64(True):
            theta = jax.tree.map(jnp.asarray, self.theta)
            groups = jnp.asarray(self._groups(self.x_train.shape[1]))
            xt, alpha = jnp.asarray(self.x_train), jnp.asarray(self.alpha)
            if with_var and self._chol is None:
                self._chol = np.asarray(_cholesky(theta, groups, xt, jnp.asarray(self.noise),
                                                  kernel=self.options["kernel"]))
            chol = jnp.asarray(self._chol) if with_var else jnp.zeros((1, 1))
            for start in range(0, len(x), _CHUNK):
                part = x[start:start + _CHUNK]
                padded = np.zeros((_CHUNK, x.shape[1]))
                padded[:len(part)] = part  # one compiled shape for every chunk
                m, v = _predict_chunk(theta, groups, xt, alpha, chol, jnp.asarray(padded),
                                      kernel=self.options["kernel"], with_var=with_var)
                mean[start:start + len(part)] = np.asarray(m)[:len(part)]
                var[start:start + len(part)] = np.asarray(v)[:len(part)]
        return self.t_mean + self.t_scale * mean, self.t_scale * np.sqrt(np.maximum(var, 0.0))

    def _predict(self, archs):
        mu, _ = self._latent(archs, with_var=False)
        return np.exp(mu) if self.options["log_target"] else mu

    def predict_std(self, archs) -> np.ndarray:
        """Posterior std `float64 [n]` of the latent cost, in the units of `predict` (module doc)."""
        if not self.train_size:
            raise PredictorError(f"{self.name}: predict_std before fit (call fit or load a saved predictor)")
        mu, sd = self._latent(self._archs(archs), with_var=True)
        return np.exp(mu) * sd if self.options["log_target"] else sd

    # ------------------------------------------------------------------ state
    def _state(self):
        state = {f"theta/{k}": np.asarray(v, np.float64) for k, v in self.theta.items()}
        state.update(x_mean=self.x_mean, x_scale=self.x_scale, x_train=self.x_train, alpha=self.alpha,
                     noise=self.noise, t_norm=np.asarray([self.t_mean, self.t_scale]))
        return state

    def _load_state(self, arrays):
        theta = {k[len("theta/"):]: np.asarray(v, np.float64) for k, v in arrays.items() if k.startswith("theta/")}
        if set(theta) != set(_THETA_KEYS):
            raise ValueError(f"theta has {sorted(theta)}, expected {sorted(_THETA_KEYS)}")
        x_train = np.asarray(arrays["x_train"], np.float64)
        alpha, noise = np.asarray(arrays["alpha"], np.float64), np.asarray(arrays["noise"], np.float64)
        width = self._design(np.zeros((1, self.space.num_decisions), np.int32)).shape[1]
        n = len(x_train)
        if x_train.shape != (n, width) or alpha.shape != (n,) or noise.shape != (n,) or not np.all(noise > 0):
            raise ValueError(f"x_train {x_train.shape}, alpha {alpha.shape}, noise {noise.shape} (all > 0) do "
                             f"not match {width} features")
        g = int(self._groups(width).max()) + 1
        for k in ("log_ls", "log_lin"):
            if theta[k].shape != (g,):
                raise ValueError(f"theta/{k} has shape {theta[k].shape}, expected ({g},)")
        self.theta, self.x_train, self.alpha, self.noise, self._chol = theta, x_train, alpha, noise, None
        self.x_mean = np.asarray(arrays["x_mean"], np.float64)
        self.x_scale = np.asarray(arrays["x_scale"], np.float64)
        self.t_mean, self.t_scale = (float(v) for v in np.asarray(arrays["t_norm"], np.float64))


# ============================================================================ the maths
_THETA_KEYS = ("mean", "log_lin", "log_sf", "log_ls", "log_sn", "noise_power")


def _init_theta(x: np.ndarray, g: int, f: int) -> dict[str, np.ndarray]:
    # Median heuristic: start the RBF where a typical pair of architectures is one length
    # scale apart, so the kernel is neither ~1 nor ~0 everywhere when Adam starts.
    sq = np.sum(x * x, 1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * x @ x.T, 0.0)
    med = float(np.median(d2[np.triu_indices(len(x), 1)])) if len(x) > 1 else 1.0
    return {
        "mean": np.zeros(()),
        "log_lin": np.full(g, math.log(0.5 / f)),  # the table explains half of var(t) a priori
        "log_sf": np.asarray(math.log(0.5)),
        "log_ls": np.full(g, 0.5 * math.log(max(med, 1e-6))),
        "log_sn": np.asarray(math.log(0.1)),
        "noise_power": np.zeros(()),  # sigmoid(0): p = 1/2
    }


def _kernel(theta, groups, a, b, kernel: str):
    """k(a, b) `[n, m]` of the module doc (the parts named in `kernel`)."""
    k = jnp.zeros((a.shape[0], b.shape[0]), a.dtype)
    if "linear" in kernel:
        k = k + (a * jnp.exp(theta["log_lin"])[groups]) @ b.T
    if "rbf" in kernel or "matern" in kernel:
        ls = jnp.exp(theta["log_ls"])[groups]
        sa, sb = a / ls, b / ls
        d2 = jnp.maximum(jnp.sum(sa * sa, 1)[:, None] + jnp.sum(sb * sb, 1)[None, :] - 2.0 * sa @ sb.T, 0.0)
        if "rbf" in kernel:
            k = k + jnp.exp(2.0 * theta["log_sf"]) * jnp.exp(-0.5 * d2)
        else:
            r = jnp.sqrt(5.0 * d2 + 1e-12)  # the epsilon keeps the gradient of sqrt finite at r = 0
            k = k + jnp.exp(2.0 * theta["log_sf"]) * (1.0 + r + r * r / 3.0) * jnp.exp(-r)
    return k


def _kdiag(theta, groups, a, kernel: str):
    d = jnp.zeros(a.shape[0], a.dtype)
    if "linear" in kernel:
        d = d + (a * a) @ jnp.exp(theta["log_lin"])[groups]
    if "rbf" in kernel or "matern" in kernel:
        d = d + jnp.exp(2.0 * theta["log_sf"])
    return d


def _noise(theta, weights, log_rel):
    # s_n^2 (y_n / typical y)^(2 p) / w_n: the noise std grows as a power p of the cost
    # (timing noise is roughly proportional to the time measured); p is fitted with the rest.
    # p = sigmoid(.) stays in [0, 1]: from constant noise to noise proportional to the cost.
    power = jax.nn.sigmoid(theta["noise_power"])
    return jnp.exp(2.0 * (theta["log_sn"] + power * log_rel)) / weights + _JITTER


def _neg_log_marginal(theta, groups, x, t, weights, log_rel, kernel: str):
    n = t.shape[0]
    ky = _kernel(theta, groups, x, x, kernel) + jnp.diag(_noise(theta, weights, log_rel))
    chol = jnp.linalg.cholesky(ky)
    r = t - theta["mean"]
    alpha = jax.scipy.linalg.cho_solve((chol, True), r)
    return 0.5 * r @ alpha + jnp.sum(jnp.log(jnp.diag(chol))) + 0.5 * n * math.log(2 * math.pi)


@functools.partial(jax.jit, static_argnames=("kernel", "steps", "lr"))
def _fit_theta(theta, groups, x, t, weights, log_rel, *, kernel: str, steps: int, lr: float):
    """`steps` Adam steps on the negative log marginal likelihood, one compiled loop."""
    tx = optax.adam(lr)
    grad = jax.grad(_neg_log_marginal)

    def body(_, carry):
        th, state = carry
        updates, state = tx.update(grad(th, groups, x, t, weights, log_rel, kernel), state, th)
        return optax.apply_updates(th, updates), state

    theta, _ = jax.lax.fori_loop(0, steps, body, (theta, tx.init(theta)))
    return theta


@functools.partial(jax.jit, static_argnames=("kernel",))
def _posterior(theta, groups, x, t, weights, log_rel, *, kernel: str):
    """alpha = K_y^-1 (t - m), the Cholesky factor, and standardized LOO residuals (R&W sec. 5.4.2)."""
    n = t.shape[0]
    ky = _kernel(theta, groups, x, x, kernel) + jnp.diag(_noise(theta, weights, log_rel))
    chol = jnp.linalg.cholesky(ky)
    alpha = jax.scipy.linalg.cho_solve((chol, True), t - theta["mean"])
    linv = jax.scipy.linalg.solve_triangular(chol, jnp.eye(n, dtype=x.dtype), lower=True)
    kinv_diag = jnp.sum(linv * linv, 0)  # diag(K_y^-1) = column sums of (L^-1)^2
    # z_n is the LOO residual over its LOO std *under unit weight*, so a downweighted point
    # keeps being judged against the base noise (else its weight would drift back to 1).
    loo_var_unit = 1.0 / kinv_diag - _noise(theta, weights, log_rel) + _noise(theta, jnp.ones_like(weights), log_rel)
    loo_std_unit = jnp.sqrt(jnp.maximum(loo_var_unit, _JITTER))  # >= noise > 0 but for rounding
    z = (alpha / kinv_diag) / loo_std_unit
    return alpha, chol, z


@functools.partial(jax.jit, static_argnames=("kernel",))
def _cholesky(theta, groups, x, noise, *, kernel: str):
    return jnp.linalg.cholesky(_kernel(theta, groups, x, x, kernel) + jnp.diag(noise))


@functools.partial(jax.jit, static_argnames=("kernel", "with_var"))
def _predict_chunk(theta, groups, xt, alpha, chol, xs, *, kernel: str, with_var: bool):
    ks = _kernel(theta, groups, xs, xt, kernel)  # [chunk, n]
    mean = theta["mean"] + ks @ alpha
    if not with_var:
        return mean, jnp.zeros_like(mean)
    v = jax.scipy.linalg.solve_triangular(chol, ks.T, lower=True)  # [n, chunk]
    return mean, _kdiag(theta, groups, xs, kernel) - jnp.sum(v * v, 0)
