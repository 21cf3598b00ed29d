"""`mlp`: a small wide-and-deep network regressing standardized latency on features.

    x~ = (x - mu_x) / sd_x                                  inputs, standardized
    t  = (g(y) - mu_t) / sd_t,   g = identity, or log with `log_target`
    f(x~) = w . x~ + b  +  W_L s(... s(W_1 x~ + b_1) ...)   "wide" linear path + "deep" MLP (GELU)
    loss  = mean_n huber_delta(f(x~_n) - t_n) + deep_l2 sum_l ||W_l||^2   (deep layers only)
    y^    = g^-1(mu_t + sd_t f(x~))

Why this shape: measured whole-network latency is mostly a sum of per-choice costs (the
`lut` model: on NAS-Bench-201 GPUs and CPUs the residual of an additive table fitted on 7,800
networks has no structure a tree ensemble can predict), so the linear path carries that sum
and the hidden layers, whose output layer starts at zero and whose weights pay an L2 price,
only learn the interactions the data supports (on the phones: ops whose output reaches no
node are pruned). Wide & deep: Cheng et al., "Wide & Deep Learning for Recommender Systems",
DLRS 2016; MLPs as NAS latency predictors: BRP-NAS (Dudziak et al., NeurIPS 2020) and HELP
(Lee et al., NeurIPS 2021). The Huber loss (Huber 1964) makes the fit robust to timing
outliers (a run disturbed by another process): a residual beyond `huber_delta` standard
deviations pulls linearly, not quadratically. The target is latency itself by default, not
its log: a sum of per-op costs is additive in milliseconds, and in log space it is not.

Inputs: the feature set, plus (option `shared`) for every group of decisions that offer the
same choices, how many of them picked each choice (`costs.features.shared_choice_counts`): the wide path
can then learn one cost per op shared by all positions, which 1,000 samples pin down better
than one cost per (position, op).

Training: AdamW (Loshchilov & Hutter, ICLR 2019), warmup-cosine learning rate, minibatches
drawn with `fold_in(key, step)`, a fixed number of steps, and the parameters of the step with
the lowest loss on a held-out `val_fraction` of the training set (early stopping, which
helped on every NAS-Bench-201 device tried). The whole loop is one jitted `lax.fori_loop`:
one compile per shape and options, no per-step dispatch, and a fit is a deterministic
function of `seed`.

Options (constructor keywords, saved with the predictor):
    features      "onehot" (default) or "onehot+analytic" (`costs.features`)
    log_target    fit log(y) and predict exp (default False, see above)
    hidden        widths of the hidden layers (default (128, 128)); () = the wide path alone
    steps         optimizer steps (default 2000)
    batch_size    minibatch size; 0 or >= n means full batch (default 256)
    lr            peak learning rate (default 3e-3); weight_decay: AdamW's (default 1e-4)
    huber_delta   Huber threshold in standard deviations of t (default 0.5); 0 = squared error
    deep_l2       L2 penalty on the deep path's weights (default 1e-2)
    shared        add the shared-choice counts to the inputs (default True)
    val_fraction  held-out share for early stopping (default 0.1; 0 = keep the last step)
    seed          initialization, held-out split and minibatch order

Example:
    >>> p = get_predictor("mlp", space, steps=500).fit(archs, y)
    >>> p.predict(archs[:3])                  # float64 [3], ms

The fitted state is plain arrays: every parameter under `param/<path>` (its path in
`nnx.state(model)`, e.g. `param/hidden/0/kernel`) and the normalization constants.
Prediction runs one jitted forward over fixed-size chunks: one compile for any batch size.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from costs.features import FEATURE_SETS, features, one_hot, shared_choice_counts
from costs.predictors.base import Predictor, PredictorError, finite_float, positive

_CHUNK = 8192  # rows per jitted forward call at predict time (one compiled shape)


class WideDeep(nnx.Module):
    """f(x) = linear(x) + MLP(x): the linear path is the additive cost table."""

    def __init__(self, in_features: int, hidden: tuple[int, ...], *, rngs: nnx.Rngs):
        self.wide = nnx.Linear(in_features, 1, rngs=rngs)
        widths = (in_features, *hidden)
        self.hidden = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(widths[:-1], widths[1:])])
        # The deep path starts at zero: training begins from the linear model and adds only
        # the interactions the data asks for.
        self.out = nnx.Linear(widths[-1], 1, kernel_init=nnx.initializers.zeros, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:  # [n, f] -> [n]
        h = x
        for layer in self.hidden:
            h = jax.nn.gelu(layer(h))
        return (self.wide(x) + self.out(h))[:, 0]


class MLPPredictor(Predictor):
    name = "mlp"

    def __init__(self, space, *, features: str = "onehot", log_target: bool = False,
                 hidden: tuple[int, ...] | list[int] = (128, 128), steps: int = 2000, batch_size: int = 256,
                 lr: float = 3e-3, weight_decay: float = 1e-4, huber_delta: float = 0.5, deep_l2: float = 1e-2,
                 shared: bool = True, val_fraction: float = 0.1, seed: int = 0,
                 metric: str = "latency_ms", device: str = ""):
        # A list, not a tuple: options go through JSON, and a loaded predictor must compare equal.
        hidden = [int(h) for h in hidden] if isinstance(hidden, (list, tuple)) else hidden
        super().__init__(space, metric=metric, device=device, features=features, log_target=bool(log_target),
                         hidden=hidden, steps=steps, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                         huber_delta=huber_delta, deep_l2=deep_l2, shared=bool(shared),
                         val_fraction=val_fraction, seed=seed)
        who = self.name
        if features not in FEATURE_SETS:
            raise PredictorError(f"{who}: option features must be one of {FEATURE_SETS}, got {features!r}")
        if not isinstance(hidden, list) or not all(h >= 1 for h in hidden):
            raise PredictorError(f"{who}: option hidden must be a list of positive widths, got {hidden!r}")
        for opt, value, low in (("steps", steps, 1), ("batch_size", batch_size, 0), ("seed", seed, -2**31)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise PredictorError(f"{who}: option {opt} must be an integer >= {low}, got {value!r}")
        finite_float(lr, "lr", who, 0.0)
        finite_float(weight_decay, "weight_decay", who, -1e-300)
        finite_float(huber_delta, "huber_delta", who, -1e-300)
        finite_float(deep_l2, "deep_l2", who, -1e-300)
        if finite_float(val_fraction, "val_fraction", who, -1e-300) >= 1:
            raise PredictorError(f"{who}: option val_fraction must be < 1, got {val_fraction!r}")

    # ------------------------------------------------------------------ model
    def _model(self, in_features: int) -> WideDeep:
        return WideDeep(in_features, tuple(self.options["hidden"]), rngs=nnx.Rngs(self.options["seed"]))

    def _design(self, archs: np.ndarray) -> np.ndarray:
        """Raw inputs: the feature set, then (option `shared`) the shared-choice counts."""
        parts = [features(self.space, archs, self.options["features"])]
        if self.options["shared"]:
            parts.append(one_hot(self.space, archs) @ shared_choice_counts(self.space)[0].astype(np.float32))
        return np.concatenate(parts, axis=1)

    def _inputs(self, archs: np.ndarray) -> np.ndarray:
        return ((self._design(archs) - self.x_mean) / self.x_scale).astype(np.float32)

    def _fit(self, archs, y):
        o = self.options
        target = np.log(positive(y, self.name)) if o["log_target"] else y
        raw = self._design(archs).astype(np.float64)
        self.x_mean = raw.mean(0).astype(np.float32)
        # A column constant in the training set (a choice never sampled) gets scale 1, so it
        # stays 0 when unseen and cannot blow up at predict time when it does appear.
        sd = raw.std(0)
        self.x_scale = np.where(sd > 1e-6, sd, 1.0).astype(np.float32)
        self.t_mean = float(target.mean())
        self.t_scale = float(target.std()) or 1.0
        x = self._inputs(archs)
        t = ((target - self.t_mean) / self.t_scale).astype(np.float32)
        # Hold out a random `val_fraction` (at least 1 point, and never all) for early stopping.
        n_val = min(len(t) - 1, max(1, round(o["val_fraction"] * len(t)))) if o["val_fraction"] > 0 else 0
        order = np.random.default_rng(o["seed"]).permutation(len(t))
        val, train = order[:n_val], order[n_val:]
        if not n_val:
            val = train[:1]  # a dummy: the loss on it is computed but never used
        graphdef, params = nnx.split(self._model(x.shape[1]))
        n = len(train)
        batch = n if o["batch_size"] <= 0 or o["batch_size"] >= n else o["batch_size"]
        params = _train(graphdef, params, jnp.asarray(x[train]), jnp.asarray(t[train]), jnp.asarray(x[val]),
                        jnp.asarray(t[val]), jax.random.key(o["seed"]), steps=o["steps"], batch=batch,
                        lr=float(o["lr"]), weight_decay=float(o["weight_decay"]),
                        huber_delta=float(o["huber_delta"]), deep_l2=float(o["deep_l2"]), early_stop=bool(n_val))
        if not all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(params)):
            raise PredictorError(f"{self.name}: training diverged (non-finite weights); lower lr")
        self.graphdef, self.params = graphdef, params

    def _predict(self, archs):
        x = self._inputs(archs).astype(np.float32)
        out = np.empty(len(x), np.float64)
        for start in range(0, len(x), _CHUNK):
            part = x[start:start + _CHUNK]
            padded = np.zeros((_CHUNK, x.shape[1]), np.float32)
            padded[:len(part)] = part  # one compiled shape for every chunk
            out[start:start + len(part)] = np.asarray(_forward(self.graphdef, self.params, padded))[:len(part)]
        t = out * self.t_scale + self.t_mean
        return np.exp(t) if self.options["log_target"] else t

    # ------------------------------------------------------------------ state
    def _state(self):
        flat = {"x_mean": self.x_mean, "x_scale": self.x_scale,
                "t_norm": np.asarray([self.t_mean, self.t_scale], np.float64)}
        for path, leaf in jax.tree_util.tree_flatten_with_path(nnx.to_pure_dict(self.params))[0]:
            flat["param/" + "/".join(str(k.key) for k in path)] = np.asarray(leaf)
        return flat

    def _load_state(self, arrays):
        x_mean = np.asarray(arrays["x_mean"], np.float32)
        width = self._design(np.zeros((1, self.space.num_decisions), np.int32)).shape[1]
        if x_mean.shape != (width,):
            raise ValueError(f"x_mean has shape {x_mean.shape}, features {self.options['features']!r} have {width}")
        graphdef, params = nnx.split(self._model(width))
        pure = nnx.to_pure_dict(params)
        leaves = []
        for path, leaf in jax.tree_util.tree_flatten_with_path(pure)[0]:
            key = "param/" + "/".join(str(k.key) for k in path)
            value = np.asarray(arrays[key], np.float32)
            if value.shape != leaf.shape:
                raise ValueError(f"{key} has shape {value.shape}, expected {leaf.shape}")
            leaves.append(jnp.asarray(value))
        nnx.replace_by_pure_dict(params, jax.tree.unflatten(jax.tree.structure(pure), leaves))
        self.graphdef, self.params = graphdef, params
        self.x_mean, self.x_scale = x_mean, np.asarray(arrays["x_scale"], np.float32)
        self.t_mean, self.t_scale = (float(v) for v in np.asarray(arrays["t_norm"], np.float64))


@functools.partial(jax.jit, static_argnames=("graphdef", "steps", "batch", "lr", "weight_decay", "huber_delta",
                                             "deep_l2", "early_stop"))
def _train(graphdef, params, x, t, x_val, t_val, key, *, steps, batch, lr, weight_decay, huber_delta, deep_l2,
           early_stop):
    """`steps` AdamW steps on the Huber loss, all inside one compiled loop.

    With `early_stop`, returns the parameters of the step with the lowest held-out loss
    (tracked every step inside the loop: no host round trip, no second compile).
    """
    schedule = optax.warmup_cosine_decay_schedule(0.0, lr, max(1, steps // 20), steps, lr * 1e-2)
    tx = optax.adamw(schedule, weight_decay=weight_decay)
    n = t.shape[0]

    def loss_fn(p, xb, tb, penalty=False):
        model = nnx.merge(graphdef, p)
        r = model(xb) - tb
        loss = jnp.mean(optax.huber_loss(r, delta=huber_delta)) if huber_delta > 0 else 0.5 * jnp.mean(r ** 2)
        if penalty and deep_l2 > 0:
            # Only the deep path is shrunk: the additive table (wide path) is the model's
            # default and the interactions must earn their weight.
            loss = loss + deep_l2 * sum(jnp.sum(layer.kernel[...] ** 2) for layer in (*model.hidden, model.out))
        return loss

    def body(step, carry):
        p, opt_state, best, best_loss = carry
        if batch < n:
            # Per-step keys from the step number: the minibatch sequence is a function of seed.
            idx = jax.random.choice(jax.random.fold_in(key, step), n, (batch,), replace=False)
            xb, tb = x[idx], t[idx]
        else:
            xb, tb = x, t
        grads = jax.grad(loss_fn)(p, xb, tb, True)
        updates, opt_state = tx.update(grads, opt_state, p)
        p = optax.apply_updates(p, updates)
        if not early_stop:
            return p, opt_state, best, best_loss
        val_loss = loss_fn(p, x_val, t_val)
        better = val_loss < best_loss
        best = jax.tree.map(lambda new, old: jnp.where(better, new, old), p, best)
        return p, opt_state, best, jnp.minimum(val_loss, best_loss)

    init = (params, tx.init(params), params, jnp.asarray(jnp.inf, jnp.float32))
    last, _, best, _ = jax.lax.fori_loop(0, steps, body, init)
    return best if early_stop else last


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _forward(graphdef, params, x):
    return nnx.merge(graphdef, params)(x)
