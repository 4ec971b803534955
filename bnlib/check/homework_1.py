r"""Homework 1's checks (chapters/05_homework.md): batch norm's forward, backward and
running statistics, each a :class:`~bnlib.check.engine.Check`.

- :data:`FORWARD` (:func:`forward`): ``fn(x, gamma, beta, eps) -> y``, training-mode batch
  norm of an ``(N, C, H, W)`` array;
- :data:`BACKWARD` (:func:`backward`): ``fn(dy, x, gamma, eps) -> (dx, dgamma, dbeta)``;
- :data:`RUNNING_STATS` (:func:`running_stats`): ``fn(running_mean, running_var, x,
  momentum) -> (new_mean, new_var)``, PyTorch's convention: ``new = (1 − momentum)·running
  + momentum·batch``, with the *unbiased* batch variance for ``running_var``.

Cases cover several shapes (N = 1, 1×1 spatial), float32 and float64, small and large ε.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bnlib.check.engine import Check, CheckResult, Mistake, make_trials
from bnlib.functional import batch_norm, batch_norm_backward, batch_stats

# --------------------------------------------------------------------------------------
# The battery of cases
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One input configuration: shape ``(N, C, H, W)``, dtype, ε, momentum and seed."""

    shape: tuple[int, int, int, int]
    dtype: type
    eps: float = 1e-5
    momentum: float = 0.1
    seed: int = 0

    def describe(self, with_momentum: bool = False) -> str:
        text = f"x of shape {self.shape}, {np.dtype(self.dtype).name}, eps={self.eps:g}"
        return text + (f", momentum={self.momentum:g}" if with_momentum else "")

    def data(self) -> dict[str, np.ndarray]:
        """Seeded inputs: channels with different means and spreads, so that statistics over
        the wrong axes give different numbers."""
        rng = np.random.default_rng(self.seed)
        n, c, h, w = self.shape
        loc = rng.uniform(-2.0, 2.0, size=(1, c, 1, 1))
        scale = rng.uniform(0.5, 2.0, size=(1, c, 1, 1))
        x = loc + scale * rng.standard_normal(self.shape)
        return {
            "x": x.astype(self.dtype),
            "gamma": rng.uniform(0.5, 2.0, size=c).astype(self.dtype),
            "beta": rng.standard_normal(c).astype(self.dtype),
            "dy": rng.standard_normal(self.shape).astype(self.dtype),
            "running_mean": rng.standard_normal(c).astype(self.dtype),
            "running_var": rng.uniform(0.5, 2.0, size=c).astype(self.dtype),
        }


# N·H·W == 1 is left out: batch norm in training is undefined there (torch raises).
CASES = (
    Case((4, 3, 5, 5), np.float64, 1e-5, 0.1, seed=1),
    Case((4, 3, 5, 5), np.float32, 1e-5, 0.1, seed=2),
    Case((1, 2, 4, 3), np.float64, 1e-5, 0.3, seed=3),  # N = 1
    Case((8, 3, 1, 1), np.float64, 1e-5, 0.01, seed=4),  # 1×1 spatial
    Case((6, 2, 1, 1), np.float32, 1e-3, 0.9, seed=5),  # 1×1 spatial, float32
    Case((3, 4, 2, 5), np.float64, 0.5, 0.1, seed=6),  # large ε
    Case((2, 3, 3, 3), np.float32, 1.0, 0.2, seed=7),  # large ε, float32
)


def hidden_cases(rng: np.random.Generator) -> list[Case]:
    """Fresh cases for grading, drawn from ``rng``: the battery's edge cases (N = 1 with
    H·W > 1, 1×1 maps, float32 and float64, large ε) with random sizes, ε, momentum and
    data, so that outputs copied from the public cases are worth nothing."""

    def side() -> int:
        return int(rng.integers(2, 6))

    def seed() -> int:
        return int(rng.integers(2**62))

    def momentum() -> float:
        return float(rng.choice([rng.uniform(0.01, 0.4), rng.uniform(0.6, 0.95)]))

    def large_eps() -> float:
        return float(rng.uniform(0.3, 1.5))

    c = lambda: int(rng.integers(1, 5))  # noqa: E731
    return [
        Case((int(rng.integers(2, 6)), c(), side(), side()), np.float64, 1e-5, momentum(), seed()),
        Case((int(rng.integers(2, 6)), c(), side(), side()), np.float32, 1e-5, momentum(), seed()),
        Case((1, c(), side(), side()), np.float64, 1e-5, momentum(), seed()),  # N = 1
        Case((1, c(), side(), side()), np.float32, 1e-4, momentum(), seed()),  # N = 1
        Case((int(rng.integers(4, 12)), c(), 1, 1), np.float64, 1e-5, momentum(), seed()),
        Case((int(rng.integers(4, 12)), c(), 1, 1), np.float32, 1e-3, momentum(), seed()),
        Case((3, c(), side(), side()), np.float64, large_eps(), momentum(), seed()),
        Case((2, c(), side(), side()), np.float32, large_eps(), momentum(), seed()),
    ]


# --------------------------------------------------------------------------------------
# Wrong references: each classic mistake, implemented on purpose
# --------------------------------------------------------------------------------------

CHANNEL_AXES = (0, 2, 3)

AXES_MISTAKES = {
    (2, 3): (
        "statistics over the wrong axes: per sample and channel (over H and W only, like "
        "instance norm). Batch norm pools each channel over the batch and space: "
        "x.mean(axis=(0, 2, 3), keepdims=True)."
    ),
    (1, 2, 3): (
        "statistics over the wrong axes: per sample, over channels and space (like layer "
        "norm). Batch norm computes one mean and variance per channel, over axes (0, 2, 3)."
    ),
    (0,): (
        "statistics over the wrong axes: over the batch axis only (one mean per pixel). "
        "Batch norm also pools over space: axes (0, 2, 3)."
    ),
    (0, 1, 2, 3): (
        "statistics over the wrong axes: one mean and variance for the whole tensor. Batch "
        "norm computes one per channel, over axes (0, 2, 3)."
    ),
}


EPS_OUTSIDE = Mistake(
    "eps_outside_sqrt",
    "ε is outside the square root: you divide by √σ² + ε, batch norm divides by "
    "√(σ² + ε). Add ε to the variance, then take the square root.",
    {"eps_outside": True},
    deduction=1,
)
UNBIASED = Mistake(
    "unbiased_variance",
    "the unbiased variance (÷ (m − 1), m = N·H·W) normalizes. Batch norm normalizes with the "
    "biased variance (÷ m): np.var's default ddof=0, not ddof=1 (torch.var's default).",
    {"ddof": 1},
    deduction=1,
)
FORWARD_MISTAKES = (
    EPS_OUTSIDE,
    UNBIASED,
    *(
        Mistake(f"wrong_axes_{''.join(map(str, axes))}", text, {"axes": axes}, deduction=3)
        for axes, text in AXES_MISTAKES.items()
    ),
    Mistake(
        "no_affine",
        "γ and β are not applied: after normalizing, scale by gamma and shift by beta, "
        "y = γ·x̂ + β, with gamma and beta shaped (1, C, 1, 1) to broadcast.",
        {"affine": False},
        deduction=2,
    ),
    Mistake(
        "no_sqrt",
        "the variance divides instead of the standard deviation: x̂ = (x − μ)/√(σ² + ε) "
        "needs the square root.",
        {"sqrt": False},
        deduction=3,
    ),
)

BACKWARD_MISTAKES = (
    Mistake(
        "no_mean_var_paths",
        "the backward forgets the paths through the mean and the variance: dx = γ·dy/√(σ²+ε) "
        "treats μ and σ² as constants, but in training they depend on every x of the "
        "channel. dx = γ/(m·√(σ²+ε))·(m·dy − Σdy − x̂·Σ(dy·x̂)).",
        {"mean_path": False, "var_path": False},
        deduction=3,
    ),
    Mistake(
        "no_mean_path",
        "the backward forgets the path through the mean μ: the term −Σdy/m (the gradient "
        "that flows back through μ = Σx/m) is missing from dx.",
        {"mean_path": False},
        deduction=1.5,
    ),
    Mistake(
        "no_var_path",
        "the backward forgets the path through the variance σ²: the term −x̂·Σ(dy·x̂)/m (the "
        "gradient that flows back through σ² = Σ(x − μ)²/m) is missing from dx.",
        {"var_path": False},
        deduction=1.5,
    ),
    Mistake(
        "dgamma_uses_x",
        "dgamma is Σ dy·x; it is Σ dy·x̂, with the normalized input x̂ = (x − μ)/√(σ² + ε).",
        {"dgamma_uses_x": True},
        deduction=1,
    ),
    Mistake(
        "dgamma_dbeta_swapped",
        "dgamma and dbeta are swapped: return (dx, dgamma, dbeta) with dgamma = Σ dy·x̂ and "
        "dbeta = Σ dy.",
        {"swap_params": True},
        deduction=1,
    ),
    EPS_OUTSIDE,
    UNBIASED,
    Mistake("wrong_axes_23", AXES_MISTAKES[(2, 3)], {"axes": (2, 3)}, deduction=3),
)

RUNNING_MISTAKES = (
    Mistake(
        "biased_running_var",
        "running_var takes the biased batch variance (÷ m). PyTorch's running_var takes the "
        "unbiased one, σ²·m/(m − 1) with m = N·H·W (np.var(..., ddof=1)), even though the "
        "biased one normalizes.",
        {"ddof": 0},
        deduction=0.5,
    ),
    Mistake(
        "keras_momentum",
        "momentum is applied the Keras way round: new = momentum·running + (1 − momentum)·"
        "batch. PyTorch's momentum is the weight of the new batch: new = (1 − momentum)·"
        "running + momentum·batch (PyTorch's 0.1 is Keras's 0.9).",
        {"keras": True},
        deduction=1,
    ),
)


def forward_variant(
    x, gamma, beta, eps, *, axes=CHANNEL_AXES, ddof=0, eps_outside=False, affine=True, sqrt=True
) -> np.ndarray:
    """Batch norm with chosen mistakes, in float64, returned in ``x``'s dtype."""
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=axes, keepdims=True)
    var = ((x64 - mean) ** 2).sum(axis=axes, keepdims=True) / (x64.size / mean.size - ddof)
    with np.errstate(all="ignore"):
        if not sqrt:
            denom = var + eps
        elif eps_outside:
            denom = np.sqrt(var) + eps
        else:
            denom = np.sqrt(var + eps)
        y = (x64 - mean) / denom
    if affine:
        y = y * gamma.reshape(1, -1, 1, 1) + beta.reshape(1, -1, 1, 1)
    return y.astype(x.dtype)


def backward_variant(
    dy,
    x,
    gamma,
    eps,
    *,
    axes=CHANNEL_AXES,
    ddof=0,
    eps_outside=False,
    mean_path=True,
    var_path=True,
    dgamma_uses_x=False,
    swap_params=False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The staged backward of :func:`forward_variant`, with chosen mistakes."""
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    g = gamma.astype(np.float64).reshape(1, -1, 1, 1)
    mu = x64.mean(axis=axes, keepdims=True)
    m_stat = x64.size / mu.size  # values pooled by each statistic
    xc = x64 - mu
    var = (xc**2).sum(axis=axes, keepdims=True) / (m_stat - ddof)
    with np.errstate(all="ignore"):
        if eps_outside:
            s = 1.0 / (np.sqrt(var) + eps)
            ds_dvar = -(s**2) / (2.0 * np.sqrt(var))
        else:
            s = (var + eps) ** -0.5
            ds_dvar = -0.5 * (var + eps) ** -1.5
        xhat = xc * s
        dxhat = dy64 * g
        dxc = dxhat * s
        if var_path:
            ds = (dxhat * xc).sum(axis=axes, keepdims=True)
            dxc = dxc + ds * ds_dvar * 2.0 * xc / (m_stat - ddof)
        dx = dxc - dxc.mean(axis=axes, keepdims=True) if mean_path else dxc
    dgamma = (dy64 * (x64 if dgamma_uses_x else xhat)).sum(axis=CHANNEL_AXES)
    dbeta = dy64.sum(axis=CHANNEL_AXES)
    if swap_params:
        dgamma, dbeta = dbeta, dgamma
    dtype = x.dtype
    return dx.astype(dtype), dgamma.astype(dtype), dbeta.astype(dtype)


def running_variant(running_mean, running_var, x, momentum, *, ddof=1, keras=False):
    """The running-statistics update with chosen mistakes."""
    mean, var = batch_stats(x)
    m = x.size // x.shape[1]
    var = var * m / (m - ddof)
    a, b = (momentum, 1 - momentum) if keras else (1 - momentum, momentum)
    new_mean = a * running_mean.astype(np.float64) + b * mean
    new_var = a * running_var.astype(np.float64) + b * var
    return new_mean.astype(running_mean.dtype), new_var.astype(running_var.dtype)


# --------------------------------------------------------------------------------------
# The correct references: bnlib itself
# --------------------------------------------------------------------------------------


def reference_forward(x, gamma, beta, eps):
    return (batch_norm(x, weight=gamma, bias=beta, training=True, eps=eps),)


def reference_backward(dy, x, gamma, eps):
    return batch_norm_backward(dy, x, gamma, eps)


def reference_running_stats(running_mean, running_var, x, momentum):
    """bnlib's training-mode ``batch_norm`` updates copies of the running arrays in place."""
    new_mean, new_var = running_mean.copy(), running_var.copy()
    batch_norm(x, new_mean, new_var, training=True, momentum=momentum)
    return new_mean, new_var


# --------------------------------------------------------------------------------------
# The three checks of the batch norm homework
# --------------------------------------------------------------------------------------


def _covered() -> str:
    eps = sorted({case.eps for case in CASES})
    return (
        "Shapes including N = 1 and 1×1 spatial, float32 and float64, "
        f"ε from {eps[0]:g} to {eps[-1]:g}."
    )


def _forward_args(d, c):
    return (d["x"], d["gamma"], d["beta"], c.eps)


def _backward_args(d, c):
    return (d["dy"], d["x"], d["gamma"], c.eps)


def _running_args(d, c):
    return (d["running_mean"], d["running_var"], d["x"], c.momentum)


FORWARD = Check(
    name="forward",
    arg_names=("x", "gamma", "beta", "eps"),
    outputs=("y",),
    reference=reference_forward,
    public=lambda: make_trials(CASES, _forward_args),
    hidden=lambda rng: make_trials(hidden_cases(rng), _forward_args),
    variant=lambda x, g, b, eps, **o: (forward_variant(x, g, b, eps, **o),),
    mistakes=FORWARD_MISTAKES,
    passed_note=_covered(),
)
BACKWARD = Check(
    name="backward",
    arg_names=("dy", "x", "gamma", "eps"),
    outputs=("dx", "dgamma", "dbeta"),
    reference=reference_backward,
    public=lambda: make_trials(CASES, _backward_args),
    hidden=lambda rng: make_trials(hidden_cases(rng), _backward_args),
    variant=backward_variant,
    mistakes=BACKWARD_MISTAKES,
    passed_note=_covered(),
)
RUNNING_STATS = Check(
    name="running_stats",
    arg_names=("running_mean", "running_var", "x", "momentum"),
    outputs=("new_mean", "new_var"),
    reference=reference_running_stats,
    public=lambda: make_trials(CASES, _running_args, with_momentum=True),
    hidden=lambda rng: make_trials(hidden_cases(rng), _running_args, with_momentum=True),
    variant=running_variant,
    mistakes=RUNNING_MISTAKES,
    may_modify=("running_mean", "running_var"),
    passed_note=_covered(),
)


def forward(fn: Callable) -> CheckResult:
    """Check ``fn(x, gamma, beta, eps) -> y``, training-mode batch norm of ``(N, C, H, W)``.

    y = γ·(x − μ)/√(σ² + ε) + β, with μ and the biased σ² per channel over axes (0, 2, 3).
    """
    return FORWARD(fn)


def backward(fn: Callable) -> CheckResult:
    """Check ``fn(dy, x, gamma, eps) -> (dx, dgamma, dbeta)``, the training-mode backward.

    dx = γ/(m·√(σ²+ε))·(m·dy − Σdy − x̂·Σ(dy·x̂)),  dγ = Σ dy·x̂,  dβ = Σ dy.
    """
    return BACKWARD(fn)


def running_stats(fn: Callable) -> CheckResult:
    """Check ``fn(running_mean, running_var, x, momentum) -> (new_mean, new_var)``.

    PyTorch's convention: new = (1 − momentum)·running + momentum·batch, where the batch
    variance for ``running_var`` is the unbiased one, σ²·m/(m − 1), m = N·H·W. Updating the
    running arrays in place as well is allowed (PyTorch does); the returned arrays count.
    """
    return RUNNING_STATS(fn)
