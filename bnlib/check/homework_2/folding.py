r"""Homework 2, part 4: folding an eval-mode batch norm into the convolution before it
(:data:`FOLD_BN`, :func:`fold_bn`), ``fn(conv_w, conv_b, running_mean, running_var, eps,
gamma, beta) -> (weight, bias)``, reference :func:`bnlib.fold.fold_conv_bn`; and the
decision, which layer orders fold at all (:data:`FOLD_ORDERS`, :func:`fold_orders`),
``fn() -> (conv_bn, bn_conv_zero_pad, bn_conv_no_pad)``, three bools. The diagnoses name
each mistake without printing the folded formula: the homework asks the student to derive
it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bnlib import fold
from bnlib.check.engine import (
    CaseResult,
    Check,
    CheckResult,
    Mistake,
    Returned,
    Trial,
    describe_exception,
    make_trials,
)


@dataclass(frozen=True)
class FoldCase:
    """A convolution weight of ``shape`` (C_out, C_in, kH, kW), with or without its bias."""

    shape: tuple[int, int, int, int]
    dtype: type
    eps: float = 1e-5
    conv_bias: bool = True
    seed: int = 0

    def describe(self, with_momentum: bool = False) -> str:
        bias = "" if self.conv_bias else ", conv_b=None"
        return f"conv_w of shape {self.shape}, {np.dtype(self.dtype).name}, eps={self.eps:g}{bias}"

    def data(self) -> dict:
        """Seeded weights and running statistics (some variances small, so that ε shows)."""
        rng = np.random.default_rng(self.seed)
        c_out = self.shape[0]
        values = {
            "conv_w": 0.5 * rng.standard_normal(self.shape),
            "conv_b": rng.standard_normal(c_out) if self.conv_bias else None,
            "running_mean": rng.uniform(-2.0, 2.0, c_out),
            "running_var": rng.choice([0.01, 1.0], c_out) * rng.uniform(0.5, 2.0, c_out),
            "gamma": rng.uniform(0.5, 2.0, c_out),
            "beta": rng.standard_normal(c_out),
        }
        return {k: None if v is None else v.astype(self.dtype) for k, v in values.items()}


FOLD_CASES = (
    FoldCase((4, 4, 3, 3), np.float64, 1e-5, True, seed=31),
    FoldCase((4, 4, 3, 3), np.float32, 1e-5, True, seed=32),
    FoldCase((8, 3, 3, 3), np.float64, 1e-5, True, seed=33),  # C_out ≠ C_in
    FoldCase((6, 6, 1, 1), np.float64, 1e-3, False, seed=34),  # 1×1 conv without bias
    FoldCase((3, 3, 5, 5), np.float64, 0.5, True, seed=35),  # large ε
    FoldCase((5, 2, 3, 3), np.float32, 1.0, False, seed=36),  # large ε, no bias, float32
    FoldCase((4, 1, 3, 3), np.float64, 1e-5, True, seed=37),  # depthwise: C_in / groups = 1
)


def hidden_fold_cases(rng: np.random.Generator) -> list[FoldCase]:
    """Fresh random cases, one per public case and with its edge: square and non-square
    weights, 1×1 and depthwise kernels, no conv bias, float32 and float64, large ε."""
    cases = []
    for t in FOLD_CASES:
        c_out, c_in, kh, kw = t.shape
        new_out = int(rng.integers(2, 9))
        new_in = {c_out: new_out, 1: 1}.get(c_in, int(rng.integers(2, 6)))
        if new_in == new_out and c_in not in (c_out, 1):
            new_in += 1
        k = 1 if kh == 1 else int(rng.choice([3, 5]))
        shape = (new_out, new_in, k, k)
        cases.append(FoldCase(shape, t.dtype, t.eps, t.conv_bias, int(rng.integers(2**31))))
    return cases


FOLD_MISTAKES = (
    Mistake(
        "fold_var_not_std",
        "the scale divides by the variance (plus ε): batch norm divides by the standard "
        "deviation, the square root of σ² + ε.",
        {"sqrt": False},
        deduction=1.5,
    ),
    Mistake(
        "fold_no_eps",
        "ε is missing: batch norm in eval mode divides by √(σ² + ε), with the layer's own ε; "
        "a small running variance (or a large ε) shows the difference.",
        {"eps_at": "none"},
        deduction=0.5,
    ),
    Mistake(
        "fold_eps_outside_sqrt",
        "ε is outside the square root: √σ² + ε. Batch norm adds ε to the variance first.",
        {"eps_at": "outside"},
        deduction=0.5,
    ),
    Mistake(
        "fold_conv_bias_dropped",
        "the folded bias drops the convolution's own bias: it is right only for a convolution "
        "without bias. The conv's bias is part of the output batch norm normalizes.",
        {"bias": "no_conv_bias"},
        deduction=1,
    ),
    Mistake(
        "fold_mean_not_subtracted",
        "the folded bias forgets the running mean: batch norm subtracts μ before it scales.",
        {"bias": "no_mean"},
        deduction=1,
    ),
    Mistake(
        "fold_conv_bias_not_scaled",
        "the convolution's bias is not scaled: it is part of the conv's output, which batch "
        "norm scales like the rest.",
        {"bias": "conv_bias_unscaled"},
        deduction=1,
    ),
    Mistake(
        "fold_beta_dropped",
        "β is missing from the folded bias: batch norm adds its shift β after scaling.",
        {"bias": "no_beta"},
        deduction=1,
    ),
    Mistake(
        "fold_bias_not_folded",
        "the bias is returned unchanged (the conv's own bias, or zeros): batch norm's mean and "
        "shift must be folded into it too.",
        {"bias": "unchanged"},
        deduction=1.5,
    ),
    Mistake(
        "fold_weight_wrong_axis",
        "the weight is scaled along its input channels (axis 1): batch norm scales the "
        "conv's output channels, the weight's axis 0.",
        {"axis": 1},
        deduction=1.5,
    ),
)


def fold_variant(
    conv_w, conv_b, running_mean, running_var, eps, gamma, beta, *, sqrt=True,
    eps_at="inside", bias="folded", axis=0,
) -> tuple:  # fmt: skip
    """Folding with chosen mistakes, in float64, returned in ``conv_w``'s dtype.

    ``eps_at``: "inside" √(σ² + ε) (right), "outside" √σ² + ε, or "none".
    """
    var = running_var.astype(np.float64)
    mu = running_mean.astype(np.float64)
    b = np.zeros_like(mu) if conv_b is None else conv_b.astype(np.float64)
    with np.errstate(all="ignore"):
        if not sqrt:
            denom = var + (0.0 if eps_at == "none" else eps)
        elif eps_at == "outside":
            denom = np.sqrt(var) + eps
        else:
            denom = np.sqrt(var + (0.0 if eps_at == "none" else eps))
        a = gamma.astype(np.float64) / denom
    folded_bias = {
        "folded": a * (b - mu) + beta,
        "no_conv_bias": beta - a * mu,
        "no_mean": a * b + beta,
        "no_beta": a * (b - mu),
        "conv_bias_unscaled": b + beta - a * mu,
        "unchanged": b,
    }[bias]
    shape = [1] * conv_w.ndim
    shape[axis] = -1
    weight = conv_w.astype(np.float64) * a.reshape(shape)
    return weight.astype(conv_w.dtype), folded_bias.astype(conv_w.dtype)


def reference_fold_bn(conv_w, conv_b, running_mean, running_var, eps, gamma, beta):
    return fold.fold_conv_bn(conv_w, conv_b, running_mean, running_var, eps, gamma, beta)


def _fold_args(d, c):
    return tuple(
        d[k] if k in d else c.eps
        for k in ("conv_w", "conv_b", "running_mean", "running_var", "eps", "gamma", "beta")
    )


FOLD_BN = Check(
    name="fold_bn",
    arg_names=("conv_w", "conv_b", "running_mean", "running_var", "eps", "gamma", "beta"),
    outputs=("weight", "bias"),
    reference=reference_fold_bn,
    public=lambda: make_trials(FOLD_CASES, _fold_args),
    hidden=lambda rng: make_trials(hidden_fold_cases(rng), _fold_args),
    variant=fold_variant,
    mistakes=FOLD_MISTAKES,
    passed_note="No conv bias, 1×1 and depthwise kernels, float32 and float64, ε up to 1.",
)


def fold_bn(fn: Callable) -> CheckResult:
    r"""Check ``fn(conv_w, conv_b, running_mean, running_var, eps, gamma, beta) -> (weight,
    bias)``: one convolution equal to the convolution followed by batch norm in eval mode
    (``conv_b`` may be None: a convolution without bias)."""
    return FOLD_BN(fn)


# --------------------------------------------------------------------------------------
# Which layer orders fold: fn() -> (conv_bn, bn_conv_zero_pad, bn_conv_no_pad)
# --------------------------------------------------------------------------------------

ORDERS = ("conv_bn", "bn_conv_zero_pad", "bn_conv_no_pad")
FOLD_ORDERS_MISTAKES = (
    Mistake(
        "orders_conv_bn_not_foldable",
        "conv → BN was marked as not foldable: in eval mode batch norm is a fixed affine map "
        "per channel of the conv's output, which the conv's weight and bias can absorb.",
        {"conv_bn": False},
        deduction=1,
    ),
    Mistake(
        "orders_zero_pad_foldable",
        "BN → conv with zero padding was marked as foldable: look at what the convolution "
        "reads on the border, and what batch norm would have made of those values.",
        {"bn_conv_zero_pad": True},
        deduction=0.5,
    ),
    Mistake(
        "orders_no_pad_not_foldable",
        "BN → conv without padding was marked as not foldable: every input the convolution "
        "reads then went through batch norm's affine map.",
        {"bn_conv_no_pad": False},
        deduction=0.5,
    ),
)


def fold_orders_variant(**answers) -> tuple:
    """The three answers, the right ones unless ``answers`` says otherwise."""
    right = {"conv_bn": True, "bn_conv_zero_pad": False, "bn_conv_no_pad": True}
    return (np.array([answers.get(k, right[k]) for k in ORDERS]),)


def call_fold_orders(fn: Callable, trial: Trial, names: tuple[str, ...]) -> Returned:
    """The caller of :data:`FOLD_ORDERS` (in the grader's sandbox): ``fn()`` must return
    three bools, handed back as one boolean array."""
    try:
        out = fn()
    except (Exception, SystemExit) as exc:  # the student's function may raise anything
        text = describe_exception(exc)
        return Returned(problem=f"your function raised {text}", raised=text)
    if type(out) not in (tuple, list) or len(out) != len(ORDERS):
        return Returned(problem=f"returned {type(out).__name__}; expected a tuple of 3 bools")
    if not all(type(v) in (bool, np.bool_) for v in out):
        return Returned(problem="expected three bools (True or False)")
    return Returned(outputs=[np.array([bool(v) for v in out])])


def _orders_trials(rng=None) -> list[Trial]:
    return [Trial("the three orders", (), np.dtype(bool))]


FOLD_ORDERS = Check(
    name="fold_orders",
    arg_names=(),
    outputs=("foldable",),
    reference=lambda: fold_orders_variant(),
    public=_orders_trials,
    hidden=_orders_trials,
    variant=fold_orders_variant,
    mistakes=FOLD_ORDERS_MISTAKES,
)


def fold_orders(fn: Callable) -> CheckResult:
    """Check that ``fn() -> (conv_bn, bn_conv_zero_pad, bn_conv_no_pad)`` returns three bools
    and say that they were recorded. Whether they are right is graded when you hand in: this
    check only reads them, and its report is the same whatever they are (the book's page runs
    it on the solution, above the collapsed answer, so it must not print the answer)."""
    back = call_fold_orders(fn, _orders_trials()[0], FOLD_ORDERS.outputs)
    if back.outputs is None:
        case = CaseResult("your answer", False, [back.problem or "no answer"], values_ok=False)
        summary = back.problem or ""
        if (back.raised or "").startswith("NotImplementedError"):
            summary = "Not implemented yet: your function raises NotImplementedError."
        return CheckResult(FOLD_ORDERS.name, [case], summary=summary)
    note = "answer recorded (three bools): graded when you hand in, with your written reason."
    return Recorded(FOLD_ORDERS.name, [CaseResult("your answer", True)], passed_note=note)


class Recorded(CheckResult):
    """A check that only reads the answer: its report says what was recorded, no verdict."""

    def __str__(self) -> str:
        return f"bnlib.check.{self.name}: {self.passed_note}"

    __repr__ = __str__
