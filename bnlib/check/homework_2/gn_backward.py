r"""Homework 2, part 1b: group norm's backward (:data:`GROUP_NORM_BACKWARD`,
:func:`group_norm_backward`), ``fn(dy, x, num_groups, gamma, eps) -> (dx, dgamma, dbeta)``.

The reference (:func:`reference_group_norm_backward`) is the staged backward in float64,
checked against ``torch.nn.functional.group_norm`` under autograd and against finite
differences in ``tests/bnlib/test_check_homework_2.py``. The cases are those of the forward
(:data:`~bnlib.check.homework_2.gn_forward.GROUP_NORM_CASES`): odd group sizes, 1×1 maps,
N = 1, one group and C groups, float32 and float64.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bnlib.check.engine import Check, CheckResult, Mistake, make_trials
from bnlib.check.homework_2.gn_forward import GROUP_NORM_CASES, hidden_group_norm_cases

GROUP_NORM_BACKWARD_MISTAKES = (
    Mistake(
        "gnb_no_mean_var_paths",
        "dx treats the group's mean and variance as constants (dx = γ·dy/√(σ² + ε)). In "
        "training they are computed from every value of the (sample, group), so the gradient "
        "also flows back through μ and through σ²: two more terms, each a mean over the group.",
        {"mean_path": False, "var_path": False},
        deduction=3,
    ),
    Mistake(
        "gnb_no_mean_path",
        "dx misses the path through the group's mean μ: a term that is the same for every value "
        "of a (sample, group) is missing (the gradient flowing back through μ = Σx/m).",
        {"mean_path": False},
        deduction=1.5,
    ),
    Mistake(
        "gnb_no_var_path",
        "dx misses the path through the group's variance σ²: a term proportional to x̂ is "
        "missing (the gradient flowing back through σ² = Σ(x − μ)²/m).",
        {"var_path": False},
        deduction=1.5,
    ),
    Mistake(
        "gnb_gamma_outside_sums",
        "γ is factored out of the group's sums, as batch norm's compact backward does: there γ "
        "is one number for all the values a statistic pools, but a group pools C/G channels, "
        "each with its own γ. Multiply dy by γ (per channel) before taking the group's sums.",
        {"gamma_at": "outside"},
        deduction=1.5,
    ),
    Mistake(
        "gnb_gamma_per_group",
        "γ is broadcast over the wrong axis: each channel of group g got gamma[g] instead of "
        "its own gamma[c]. γ has one value per channel: reshape it to (1, C, 1, 1) against "
        "dy's (N, C, H, W), before any reshape into groups.",
        {"gamma_at": "group"},
        deduction=1,
    ),
    Mistake(
        "gnb_no_gamma",
        "dx forgets γ: the gradient reaching x̂ is dy·γ (y = γ·x̂ + β), not dy.",
        {"gamma_at": "none"},
        deduction=1,
    ),
    Mistake(
        "gnb_dgamma_uses_x",
        "dgamma is Σ dy·x; it is Σ dy·x̂, with the normalized input x̂ of the forward pass.",
        {"dgamma_uses_x": True},
        deduction=1,
    ),
    Mistake(
        "gnb_param_grads_per_group",
        "dgamma and dbeta are summed per group (or over the channels too): they hold one value "
        "per channel, each a sum over the batch and the spatial positions only.",
        {"param_sums": "group"},
        deduction=1,
    ),
)


def group_norm_backward_variant(
    dy, x, num_groups, gamma, eps, *, mean_path=True, var_path=True, gamma_at="channel",
    dgamma_uses_x=False, param_sums="channel",
) -> tuple:  # fmt: skip
    """The staged backward of group norm with chosen mistakes, in float64, each output in
    ``x``'s dtype. ``gamma_at``: "channel" (right), "outside" (γ out of the group's sums),
    "group" (gamma[g] for every channel of group g) or "none"; ``param_sums``: "channel"
    (right) or "group" (dγ, dβ summed over each group's channels, repeated per channel)."""
    n, c = x.shape[:2]
    per_group = c // num_groups
    rows = x.astype(np.float64).reshape(n, num_groups, -1)  # one (sample, group) a row
    dy64 = dy.astype(np.float64)
    mu = rows.mean(axis=2, keepdims=True)
    rho = 1.0 / np.sqrt(((rows - mu) ** 2).mean(axis=2, keepdims=True) + eps)
    xhat = (rows - mu) * rho
    g = {
        "channel": gamma.astype(np.float64),
        "outside": np.ones(c),
        "none": np.ones(c),
        "group": np.repeat(gamma.astype(np.float64)[:num_groups], per_group),
    }[gamma_at]
    dxhat = (dy64 * g.reshape(1, c, 1, 1)).reshape(rows.shape)
    dx = dxhat
    if mean_path:
        dx = dx - dxhat.mean(axis=2, keepdims=True)
    if var_path:
        dx = dx - xhat * (dxhat * xhat).mean(axis=2, keepdims=True)
    dx = (dx * rho).reshape(x.shape)
    if gamma_at == "outside":
        dx = dx * gamma.astype(np.float64).reshape(1, c, 1, 1)
    by_channel = (x.astype(np.float64) if dgamma_uses_x else xhat.reshape(x.shape)) * dy64
    dgamma, dbeta = by_channel.sum(axis=(0, 2, 3)), dy64.sum(axis=(0, 2, 3))
    if param_sums == "group":
        dgamma = np.repeat(dgamma.reshape(num_groups, -1).sum(axis=1), per_group)
        dbeta = np.repeat(dbeta.reshape(num_groups, -1).sum(axis=1), per_group)
    return tuple(v.astype(x.dtype) for v in (dx, dgamma, dbeta))


def reference_group_norm_backward(dy, x, num_groups, gamma, eps):
    """dx, dγ, dβ of group norm, staged, in float64 (independent of the student's code)."""
    return group_norm_backward_variant(dy, x, num_groups, gamma, eps)


def _backward_args(d, c):
    return (d["dy"], d["x"], c.groups, d["gamma"], c.eps)


GROUP_NORM_BACKWARD = Check(
    name="group_norm_backward",
    arg_names=("dy", "x", "num_groups", "gamma", "eps"),
    outputs=("dx", "dgamma", "dbeta"),
    reference=reference_group_norm_backward,
    public=lambda: make_trials(GROUP_NORM_CASES, _backward_args),
    hidden=lambda rng: make_trials(hidden_group_norm_cases(rng), _backward_args),
    variant=group_norm_backward_variant,
    mistakes=GROUP_NORM_BACKWARD_MISTAKES,
    passed_note="Odd group sizes, N = 1, 1×1 maps, 1 group and C groups, float32 and float64.",
)


def group_norm_backward(fn: Callable) -> CheckResult:
    """Check ``fn(dy, x, num_groups, gamma, eps) -> (dx, dgamma, dbeta)``: the gradients of
    a loss through group norm (training mode: μ and σ² of each sample and group depend on
    x), given dy = ∂L/∂y of shape (N, C, H, W); dgamma and dbeta of shape (C,)."""
    return GROUP_NORM_BACKWARD(fn)
