r"""Homework 2, part 1: group norm's forward (:data:`GROUP_NORM`, :func:`group_norm`),
``fn(x, num_groups, gamma, beta, eps) -> y``, reference :func:`bnlib.norms.group_norm`.
The backward is :mod:`bnlib.check.homework_2.group_norm_backward`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bnlib import norms
from bnlib.check.engine import Check, CheckResult, Mistake, make_trials


@dataclass(frozen=True)
class GroupNormCase:
    """``x`` of shape ``(N, C, H, W)`` in ``groups`` groups, dtype, ε and seed."""

    shape: tuple[int, int, int, int]
    groups: int
    dtype: type
    eps: float = 1e-5
    seed: int = 0

    def describe(self, with_momentum: bool = False) -> str:
        return (
            f"x of shape {self.shape}, num_groups={self.groups}, "
            f"{np.dtype(self.dtype).name}, eps={self.eps:g}"
        )

    def data(self) -> dict:
        """Seeded inputs: every sample and channel with its own mean, every channel with its
        own spread, so that statistics over the wrong values give different numbers."""
        rng = np.random.default_rng(self.seed)
        n, c, h, w = self.shape
        loc = rng.uniform(-2.0, 2.0, size=(1, c, 1, 1)) + rng.uniform(-1.0, 1.0, (n, 1, 1, 1))
        scale = rng.uniform(0.5, 2.0, size=(1, c, 1, 1))
        x = loc + scale * rng.standard_normal(self.shape)
        return {
            "x": x.astype(self.dtype),
            "gamma": rng.uniform(0.5, 2.0, size=c).astype(self.dtype),
            "beta": rng.standard_normal(c).astype(self.dtype),
            "dy": rng.standard_normal(self.shape).astype(self.dtype),  # for the backward
        }


# Every group pools at least 2 values, so that the N−1 variance stays finite.
GROUP_NORM_CASES = (
    GroupNormCase((4, 6, 3, 3), 3, np.float64, 1e-5, seed=11),
    GroupNormCase((4, 6, 3, 3), 2, np.float32, 1e-5, seed=12),
    GroupNormCase((1, 4, 2, 3), 2, np.float64, 1e-5, seed=13),  # N = 1
    GroupNormCase((8, 6, 1, 1), 3, np.float64, 1e-5, seed=14),  # 1×1 maps
    GroupNormCase((2, 4, 3, 3), 4, np.float32, 1e-3, seed=15),  # G = C: instance norm
    GroupNormCase((3, 6, 2, 2), 1, np.float64, 0.5, seed=16),  # G = 1, large ε
    GroupNormCase((2, 8, 2, 3), 4, np.float32, 1.0, seed=17),  # large ε, float32
    GroupNormCase((3, 9, 1, 1), 3, np.float32, 1e-5, seed=18),  # 3 channels a group, 1×1
)


def hidden_group_norm_cases(rng: np.random.Generator) -> list[GroupNormCase]:
    """Fresh random cases, one per public case and with its edge: N = 1, 1×1 maps, one
    group, C groups, float32 and float64, large ε."""
    cases = []
    for template in GROUP_NORM_CASES:
        n, c, h, w = template.shape
        groups = 1 if template.groups == 1 else int(rng.integers(2, 5))
        per_group = 1 if template.groups == c else int(rng.integers(2, 4))
        per_group = 3 if c // max(template.groups, 1) == 3 else per_group  # an odd group
        h, w = (1, 1) if h * w == 1 else (int(rng.integers(2, 5)), int(rng.integers(1, 5)))
        n = 1 if n == 1 else int(rng.integers(2, 6))
        shape = (n, groups * per_group, h, w)
        seed_k = int(rng.integers(2**31))
        cases.append(GroupNormCase(shape, groups, template.dtype, template.eps, seed=seed_k))
    return cases


GROUP_NORM_MISTAKES = (
    Mistake(
        "gn_batch_axes",
        "statistics over batch norm's axes: one mean and variance per channel, pooled over "
        "the batch and space. Group norm never pools the batch: each sample n and group g "
        "has its own μ and σ², over the group's C/G channels and H, W.",
        {"pooling": "batch"},
        deduction=3,
    ),
    Mistake(
        "gn_instance_axes",
        "statistics per sample and channel, over H and W only: instance norm (group norm "
        "with num_groups = C). Pool the C/G channels of a group together: "
        "x.reshape(N, G, -1), then reduce over the last axis.",
        {"pooling": "instance"},
        deduction=2,
    ),
    Mistake(
        "gn_layer_axes",
        "statistics per sample over all the channels: layer norm (group norm with "
        "num_groups = 1). Each group of C/G channels has its own μ and σ².",
        {"pooling": "layer"},
        deduction=2,
    ),
    Mistake(
        "gn_interleaved_groups",
        "the groups are interleaved: channel c went to group c % G, as "
        "x.reshape(N, C // G, G, H, W) puts it. A group is C/G consecutive channels (group g "
        "holds channels g·C/G to (g + 1)·C/G − 1): x.reshape(N, G, C // G, H, W), the group "
        "axis before the channels within a group.",
        {"pooling": "interleaved"},
        deduction=1.5,
    ),
    Mistake(
        "gn_unbiased_variance",
        "the unbiased variance (÷ (m − 1), with m = (C/G)·H·W values per group) normalizes. "
        "Group norm, like batch norm, uses the biased variance (÷ m): np.var's default ddof=0.",
        {"ddof": 1},
        deduction=1,
    ),
    Mistake(
        "gn_eps_outside_sqrt",
        "ε is outside the square root: you divide by √σ² + ε; group norm divides by "
        "√(σ² + ε). Add ε to the variance, then take the square root.",
        {"eps_outside": True},
        deduction=1,
    ),
    Mistake(
        "gn_affine_per_group",
        "γ and β are applied per group: every channel of group g gets gamma[g] and beta[g]. "
        "They hold one value per channel: channel c gets gamma[c] and beta[c] (apply them "
        "after reshaping back to (N, C, H, W), with gamma.reshape(1, C, 1, 1)).",
        {"affine": "group"},
        deduction=1,
    ),
    Mistake(
        "gn_no_affine",
        "γ and β are not applied: after normalizing, y = γ·x̂ + β, one γ and β per channel.",
        {"affine": "none"},
        deduction=2,
    ),
)


def group_norm_variant(
    x, num_groups, gamma, beta, eps, *, pooling="groups", ddof=0, eps_outside=False,
    affine="channel",
) -> np.ndarray:  # fmt: skip
    """Group norm with chosen mistakes, in float64, returned in ``x``'s dtype.

    ``pooling``: which values share a (μ, σ²): "groups" (right), "interleaved" (channel c
    in group c % G), "instance", "layer" or "batch". ``affine``: "channel" (right),
    "group" (gamma[g] for every channel of group g) or "none".
    """
    n, c = x.shape[:2]
    values = x.astype(np.float64).reshape(n, c, -1)  # (N, C, H·W)
    group_of = {
        "groups": np.arange(c) // (c // num_groups),
        "interleaved": np.arange(c) % num_groups,
        "instance": np.arange(c),
        "layer": np.zeros(c, int),
        "batch": np.arange(c),
    }[pooling]
    axes = (0, 1, 2) if pooling == "batch" else (1, 2)
    mean, var = np.empty((n, c, 1)), np.empty((n, c, 1))
    for g in np.unique(group_of):
        members = values[:, group_of == g]
        m = members.size // (1 if pooling == "batch" else n)
        mu = members.mean(axis=axes, keepdims=True)
        mean[:, group_of == g] = mu
        var[:, group_of == g] = ((members - mu) ** 2).sum(axis=axes, keepdims=True) / (m - ddof)
    with np.errstate(all="ignore"):
        denom = np.sqrt(var) + eps if eps_outside else np.sqrt(var + eps)
        y = (values - mean) / denom
    if affine != "none":
        index = np.arange(c) // (c // num_groups) if affine == "group" else np.arange(c)
        y = y * gamma[index].reshape(1, c, 1) + beta[index].reshape(1, c, 1)
    return y.reshape(x.shape).astype(x.dtype)


def reference_group_norm(x, num_groups, gamma, beta, eps):
    return (norms.group_norm(x, num_groups, gamma, beta, eps),)


def _group_norm_args(d, c):
    return (d["x"], c.groups, d["gamma"], d["beta"], c.eps)


GROUP_NORM = Check(
    name="group_norm",
    arg_names=("x", "num_groups", "gamma", "beta", "eps"),
    outputs=("y",),
    reference=reference_group_norm,
    public=lambda: make_trials(GROUP_NORM_CASES, _group_norm_args),
    hidden=lambda rng: make_trials(hidden_group_norm_cases(rng), _group_norm_args),
    variant=lambda x, g, gamma, beta, eps, **o: (group_norm_variant(x, g, gamma, beta, eps, **o),),
    mistakes=GROUP_NORM_MISTAKES,
    passed_note="N = 1, 1×1 maps, 1 group and C groups, float32 and float64, ε up to 1.",
)


def group_norm(fn: Callable) -> CheckResult:
    r"""Check ``fn(x, num_groups, gamma, beta, eps) -> y``, group norm of ``(N, C, H, W)``.

    Group g holds the C/G consecutive channels g·C/G, ..., (g + 1)·C/G − 1; for each sample
    n and group g, μ and the biased σ² pool those channels over H and W:
    y[n, c] = γ_c·(x[n, c] − μ[n, g(c)])/√(σ²[n, g(c)] + ε) + β_c.
    """
    return GROUP_NORM(fn)
