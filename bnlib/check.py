r"""Checks for a student's own batch norm, with diagnoses of the classic mistakes.

Each check takes the student's function, runs it on a battery of cases (several shapes,
including N = 1 and 1×1 spatial, float32 and float64, small and large ε) and compares it
with bnlib. It returns a :class:`CheckResult`: ``bool(result)`` is True on a pass and
``str(result)`` is a report a student can act on. A function that raises, or returns the
wrong type, shape or dtype, gets a report saying so; the checker itself never raises.

- :func:`forward`: ``fn(x, gamma, beta, eps) -> y``, training-mode batch norm of an
  ``(N, C, H, W)`` array;
- :func:`backward`: ``fn(dy, x, gamma, eps) -> (dx, dgamma, dbeta)``;
- :func:`running_stats`: ``fn(running_mean, running_var, x, momentum) -> (new_mean,
  new_var)``, PyTorch's convention: ``new = (1 − momentum)·running + momentum·batch``, with
  the *unbiased* batch variance for ``running_var``.

When a function fails, each classic mistake is tried as a small wrong reference on the same
cases; a mistake is diagnosed when it reproduces the student's output on every case the
student got wrong (for example ε outside the square root, which a large-ε case exposes).

The second homework's checks (chapters/09_homework_2.md), each a :class:`Check` with a
battery of its own (``*_CASES``, and ``hidden_*_cases(rng)`` for fresh draws):

- :func:`group_norm`: ``fn(x, num_groups, gamma, beta, eps) -> y``, group norm of an
  ``(N, C, H, W)`` array (reference: :func:`bnlib.norms.group_norm`);
- :func:`merge_stats`: ``fn(count_a, mean_a, m2_a, count_b, mean_b, m2_b) -> (count, mean,
  m2)``, Chan's exact merge of two shards' statistics (reference:
  :func:`bnlib.stats.chan_merge`);
- :func:`fold_bn`: ``fn(conv_w, conv_b, running_mean, running_var, eps, gamma, beta) ->
  (weight, bias)``, eval-mode batch norm folded into the convolution before it (reference:
  :func:`bnlib.fold.fold_conv_bn`).

The engine is generic, so that other homework plugs in: a :class:`Check` names a
function's arguments and outputs, its reference, its classic mistakes and two sources of
:class:`Trial` inputs (``public()``, the fixed cases a check cell runs; ``hidden(rng)``,
fresh draws for grading). :func:`call` runs a function on one trial and says what it
:class:`Returned`; :func:`assess` compares what came back with the reference and diagnoses.
A check cell does both in the student's kernel; the grader (``tools/grade.py``) makes the
calls in a sandbox and runs :func:`assess` in its own process.
"""

from __future__ import annotations

import itertools
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from bnlib import fold, norms, stats
from bnlib.functional import batch_norm, batch_norm_backward, batch_stats

__all__ = [
    "CASES",
    "Check",
    "CheckResult",
    "Returned",
    "Trial",
    "assess",
    "backward",
    "call",
    "fold_bn",
    "forward",
    "group_norm",
    "hidden_cases",
    "merge_stats",
    "running_stats",
]

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


def coarser(a: np.dtype, b: np.dtype) -> np.dtype:
    """The less precise of two dtypes (for comparing values across a dtype slip)."""
    return min(np.dtype(a), np.dtype(b), key=lambda d: d.itemsize if d.kind == "f" else 0)


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


TOLERANCE = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-9}


def close(got: np.ndarray, expected: np.ndarray, dtype, loosen: float = 1.0) -> bool:
    """|got − expected| ≤ tol·max(1, max|expected|) everywhere, tol by dtype (NaN fails);
    integers (counts) must be exact, other dtypes than float32 and float64 get float16's
    1e-2."""
    exact = np.dtype(dtype).kind in "iu"
    tol = 0.0 if exact else loosen * TOLERANCE.get(np.dtype(dtype), 1e-2)
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    diff = np.abs(np.asarray(got, np.float64) - np.asarray(expected, np.float64))
    return bool(np.all(diff <= tol * scale))


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


@dataclass(frozen=True)
class Mistake:
    """A classic mistake: a key, what to tell the student, and how to reproduce it."""

    key: str
    message: str
    options: dict = field(default_factory=dict)  # keyword arguments of the wrong reference


EPS_OUTSIDE = Mistake(
    "eps_outside_sqrt",
    "ε is outside the square root: you divide by √σ² + ε, batch norm divides by "
    "√(σ² + ε). Add ε to the variance, then take the square root.",
    {"eps_outside": True},
)
UNBIASED = Mistake(
    "unbiased_variance",
    "the unbiased variance (÷ (m − 1), m = N·H·W) normalizes. Batch norm normalizes with the "
    "biased variance (÷ m): np.var's default ddof=0, not ddof=1 (torch.var's default).",
    {"ddof": 1},
)
FORWARD_MISTAKES = (
    EPS_OUTSIDE,
    UNBIASED,
    *(
        Mistake(f"wrong_axes_{''.join(map(str, axes))}", text, {"axes": axes})
        for axes, text in AXES_MISTAKES.items()
    ),
    Mistake(
        "no_affine",
        "γ and β are not applied: after normalizing, scale by gamma and shift by beta, "
        "y = γ·x̂ + β, with gamma and beta shaped (1, C, 1, 1) to broadcast.",
        {"affine": False},
    ),
    Mistake(
        "no_sqrt",
        "the variance divides instead of the standard deviation: x̂ = (x − μ)/√(σ² + ε) "
        "needs the square root.",
        {"sqrt": False},
    ),
)

BACKWARD_MISTAKES = (
    Mistake(
        "no_mean_var_paths",
        "the backward forgets the paths through the mean and the variance: dx = γ·dy/√(σ²+ε) "
        "treats μ and σ² as constants, but in training they depend on every x of the "
        "channel. dx = γ/(m·√(σ²+ε))·(m·dy − Σdy − x̂·Σ(dy·x̂)).",
        {"mean_path": False, "var_path": False},
    ),
    Mistake(
        "no_mean_path",
        "the backward forgets the path through the mean μ: the term −Σdy/m (the gradient "
        "that flows back through μ = Σx/m) is missing from dx.",
        {"mean_path": False},
    ),
    Mistake(
        "no_var_path",
        "the backward forgets the path through the variance σ²: the term −x̂·Σ(dy·x̂)/m (the "
        "gradient that flows back through σ² = Σ(x − μ)²/m) is missing from dx.",
        {"var_path": False},
    ),
    Mistake(
        "dgamma_uses_x",
        "dgamma is Σ dy·x; it is Σ dy·x̂, with the normalized input x̂ = (x − μ)/√(σ² + ε).",
        {"dgamma_uses_x": True},
    ),
    Mistake(
        "dgamma_dbeta_swapped",
        "dgamma and dbeta are swapped: return (dx, dgamma, dbeta) with dgamma = Σ dy·x̂ and "
        "dbeta = Σ dy.",
        {"swap_params": True},
    ),
    EPS_OUTSIDE,
    UNBIASED,
    Mistake("wrong_axes_23", AXES_MISTAKES[(2, 3)], {"axes": (2, 3)}),
)

RUNNING_MISTAKES = (
    Mistake(
        "biased_running_var",
        "running_var takes the biased batch variance (÷ m). PyTorch's running_var takes the "
        "unbiased one, σ²·m/(m − 1) with m = N·H·W (np.var(..., ddof=1)), even though the "
        "biased one normalizes.",
        {"ddof": 0},
    ),
    Mistake(
        "keras_momentum",
        "momentum is applied the Keras way round: new = momentum·running + (1 − momentum)·"
        "batch. PyTorch's momentum is the weight of the new batch: new = (1 − momentum)·"
        "running + momentum·batch (PyTorch's 0.1 is Keras's 0.9).",
        {"keras": True},
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
# The generic engine: a Check, the Trials it runs, what the student's function Returned
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trial:
    """One call of the student's function: positional ``args`` (NumPy arrays and Python
    numbers), a ``label`` for reports, and the ``dtype`` that sets the tolerance."""

    label: str
    args: tuple
    dtype: np.dtype


@dataclass
class Returned:
    """What one call gave back, as seen by whoever made the call.

    ``outputs``: the returned arrays (one per output name), or None with ``problem`` saying
    what was wrong instead (it raised, returned None, a list, a tensor, too few values...).
    ``args_after``: the arguments as they were after the call (None where unknown), so that
    an in-place modification of an input can be seen. ``raised``: the exception's text when
    the call raised.
    """

    outputs: list[np.ndarray] | None = None
    problem: str | None = None
    args_after: list | None = None
    raised: str | None = None


@dataclass(frozen=True)
class Check:
    """A check of one student function, independent of how the function gets called.

    - ``name``: the report says ``bnlib.check.<name>``.
    - ``arg_names``, ``outputs``: the function's positional arguments and returned arrays
      (one name: the function returns that array; several: a tuple of them).
    - ``reference(*args) -> tuple`` of the correct outputs (an independent implementation).
    - ``mistakes`` and ``variant(*args, **mistake.options) -> tuple``: the classic mistakes,
      each a wrong reference, for diagnoses.
    - ``may_modify``: arguments the function may change in place.
    - ``public() -> list[Trial]``: the fixed cases a check cell runs (students see them).
    - ``hidden(rng) -> list[Trial]``: fresh random cases, drawn for every grading run, with
      the same edge cases as the public ones.
    """

    name: str
    arg_names: tuple[str, ...]
    outputs: tuple[str, ...]
    reference: Callable[..., tuple]
    public: Callable[[], list[Trial]]
    hidden: Callable[[np.random.Generator], list[Trial]]
    variant: Callable[..., tuple] | None = None
    mistakes: tuple[Mistake, ...] = ()
    may_modify: tuple[str, ...] = ()
    passed_note: str = ""  # added to the report of a pass (what the cases covered)

    def __call__(self, fn: Callable) -> CheckResult:
        """Run ``fn`` here, on the public cases, and report: the notebook's check cells."""
        if not callable(fn):
            problem = f"expected your function, got a {type(fn).__name__} (pass the function)"
            return CheckResult(
                self.name, [CaseResult("every case", False, [problem])], summary=problem
            )
        trials = self.public()
        return assess(self, trials, [call(fn, t, self.outputs) for t in trials])


def call(fn: Callable, trial: Trial, names: tuple[str, ...]) -> Returned:
    """Call ``fn`` on copies of ``trial.args``; what it returned, or what went wrong."""
    args = [a.copy() if isinstance(a, np.ndarray) else a for a in trial.args]
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = fn(*args)
    except (Exception, SystemExit) as exc:  # the student's function may raise anything
        text = describe_exception(exc)
        return Returned(problem=f"your function raised {text}", raised=text, args_after=args)
    outputs, problem = as_outputs(out, names)
    return Returned(outputs=outputs, problem=problem, args_after=args)


def describe_exception(exc: BaseException) -> str:
    """``TypeError: message (line 7: `code`)``, pointing into the student's code."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename != __file__]
    if frames:
        last = frames[-1]
        code = f": `{last.line.strip()}`" if last.line else ""
        text += f" (in {last.name}, line {last.lineno}{code})"
    return text


NUMBER_TYPES = (int, float, np.int32, np.int64, np.float32, np.float64)  # exact types only


def as_outputs(out, names: tuple[str, ...]):
    """The function's return value as a list of arrays, or (None, what is wrong).

    Only exact ``np.ndarray``s of numbers count: no lists, tensors, subclasses or objects
    that pretend to be arrays (``__array__``, ``__eq__``). A plain Python ``int`` or
    ``float``, or a NumPy number, counts as a 0-d array."""
    n_outputs = len(names)
    if n_outputs == 1:
        out = (out,)
    elif out is None:
        return None, f"returned None; expected a tuple {tuple(names)} (a missing `return`?)"
    elif type(out) not in (tuple, list):
        return None, f"returned a {type(out).__name__}; expected a tuple of {n_outputs} arrays"
    elif len(out) != n_outputs:
        return None, f"returned {len(out)} values; expected {n_outputs}: {', '.join(names)}"
    outputs = []
    for name, value in zip(names, out, strict=True):
        if type(value) in NUMBER_TYPES:
            value = np.asarray(value)  # a plain number (a count, say): a 0-d array
        if value is None:
            return None, f"{name} is None (a missing `return`?); expected a NumPy array"
        if hasattr(value, "detach") and hasattr(value, "numpy"):
            return None, f"{name} is a torch tensor; return a NumPy array (use .numpy())"
        if type(value) is not np.ndarray:
            return None, f"{name} is a {type(value).__name__}; expected a NumPy array"
        if value.dtype.kind not in "biuf":
            return None, f"{name} has dtype {value.dtype}; expected a floating-point array"
        outputs.append(value)
    return outputs, None


def first_error(got: np.ndarray, expected: np.ndarray) -> str:
    """Max abs error, where, and the two values there."""
    got, expected = got.astype(np.float64), expected.astype(np.float64)
    nonfinite = ~np.isfinite(got)
    if nonfinite.any():
        where = tuple(int(i) for i in np.argwhere(nonfinite)[0])
        return (
            f"{int(nonfinite.sum())} values are NaN or infinite, the first at index {where} "
            f"(expected {expected[where]:.6g}): a division by zero or a √ of a negative?"
        )
    diff = np.abs(got - expected)
    where = tuple(int(i) for i in np.unravel_index(int(np.argmax(diff)), diff.shape))
    return (
        f"max abs error {diff[where]:.3g} at index {where}: got {got[where]:.8g}, "
        f"expected {expected[where]:.8g}"
    )


def assess(check: Check, trials: list[Trial], returned: list[Returned]) -> CheckResult:
    """Compare what the function returned on each trial with the reference; diagnose.

    Everything here is computed from ``trials`` (the caller's own inputs) and the returned
    arrays: expected values come from ``check.reference`` on fresh copies of the inputs.
    Per case: the values (compared at the tolerance of the less precise of the two dtypes,
    so that a dtype slip is told apart from wrong numbers), the dtype, and whether an input
    was changed in place are judged separately.
    """
    results: list[CaseResult] = []
    wrong: dict[int, list[int]] = {k: [] for k in range(len(check.outputs))}
    got_by_case: dict[int, list[np.ndarray]] = {}
    raised: list[str] = []
    for index, (trial, back) in enumerate(zip(trials, returned, strict=True)):
        label = f"case {index + 1} ({trial.label})"
        if back.raised is not None:
            raised.append(back.raised)
        if back.outputs is None:
            problem = back.problem or "no result (it did not finish)"
            results.append(CaseResult(label, False, [problem], values_ok=False))
            continue
        args = [a.copy() if isinstance(a, np.ndarray) else a for a in trial.args]
        expected = check.reference(*args)
        problems: list[str] = []
        dtype_wrong: list[str] = []
        values_ok = True
        triples = zip(check.outputs, back.outputs, expected, strict=True)
        for k, (name, got, exp) in enumerate(triples):
            if got.shape != exp.shape:
                problems.append(f"{name} has shape {got.shape}; expected {exp.shape}")
                values_ok = False
                continue
            if not close(got, exp, coarser(got.dtype, exp.dtype)):
                problems.append(f"{name} is wrong: {first_error(got, exp)}")
                wrong[k].append(index)
                values_ok = False
            if got.dtype != exp.dtype:
                dtype_wrong.append(name)
                problems.append(
                    f"{name} has dtype {got.dtype} for a {exp.dtype} input; keep the "
                    f"input's dtype (e.g. compute in it, or .astype(x.dtype) at the end)"
                )
        modified = modified_inputs(check, trial, back)
        if modified:
            problems.append(
                f"your function changed its input {', '.join(modified)} in place; compute "
                "new arrays instead (e.g. x - mean, not x -= mean)"
            )
        got_by_case[index] = back.outputs
        results.append(CaseResult(label, not problems, problems, values_ok, dtype_wrong, modified))

    result = CheckResult(check.name, results, passed_note=check.passed_note)
    if raised and len(raised) == len(trials) and len(set(raised)) == 1:
        if raised[0].startswith("NotImplementedError"):
            result.summary = "Not implemented yet: your function raises NotImplementedError."
        else:
            result.summary = f"Your function raised on every case: {raised[0]}"
    if any(wrong.values()):
        result.values_wrong = True
        if check.variant is not None:
            result.diagnoses = diagnose(check, trials, wrong, got_by_case)
    for d in result.diagnoses:  # which failing cases a diagnosis explains
        for i in d.cases:
            results[i].explained = True
    return result


def modified_inputs(check: Check, trial: Trial, back: Returned) -> list[str]:
    """Names of the array inputs that differ after the call (those allowed to, excepted)."""
    if back.args_after is None:
        return []
    return [
        name
        for name, before, after in zip(check.arg_names, trial.args, back.args_after, strict=False)
        if isinstance(before, np.ndarray)
        and name not in check.may_modify
        and after is not None
        and not (
            isinstance(after, np.ndarray)
            and after.shape == before.shape
            and np.array_equal(before, after, equal_nan=True)
        )
    ]


def diagnose(check: Check, trials, wrong, got_by_case) -> list[Diagnosis]:
    """For each wrong output, the mistakes that reproduce it on every case where it is wrong:
    single mistakes first, then pairs made together (e.g. ε outside √ with ddof=1). A mistake
    that explains several outputs is reported once, naming them."""
    mistakes = check.mistakes
    candidates = [[(m,) for m in mistakes]]
    candidates.append(
        [
            (a, b)
            for a, b in itertools.combinations(mistakes, 2)
            if not set(a.options) & set(b.options)
        ]
    )
    cache: dict[tuple[tuple[str, ...], int], tuple] = {}

    def wrong_reference(combo, index):
        key = tuple(m.key for m in combo)
        if (key, index) not in cache:
            options = {k: v for m in combo for k, v in m.options.items()}
            args = [a.copy() if isinstance(a, np.ndarray) else a for a in trials[index].args]
            cache[key, index] = check.variant(*args, **options)
        return cache[key, index]

    found: dict[str, Diagnosis] = {}
    for k, indices in wrong.items():
        if not indices:
            continue
        for combos in candidates:
            matched = [
                combo
                for combo in combos
                if all(
                    got_by_case[i][k].shape == wrong_reference(combo, i)[k].shape
                    and close(got_by_case[i][k], wrong_reference(combo, i)[k], trials[i].dtype, 10)
                    for i in indices
                )
            ]
            for mistake in {m.key: m for combo in matched for m in combo}.values():
                diagnosis = found.setdefault(
                    mistake.key, Diagnosis(mistake.key, mistake.message, [])
                )
                diagnosis.outputs.append(check.outputs[k])
                diagnosis.cases = sorted(set(diagnosis.cases) | set(indices))
            if matched:
                break
    return list(found.values())


# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------


@dataclass
class CaseResult:
    """The outcome of one case: passed, or what was wrong with which output.

    ``values_ok``: every output has the right shape and values (its dtype aside);
    ``dtype_wrong``: outputs with another dtype than the reference's; ``modified``: inputs
    changed in place; ``explained``: the wrong values match a diagnosed classic mistake."""

    case: str
    passed: bool
    problems: list[str] = field(default_factory=list)
    values_ok: bool = True
    dtype_wrong: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    explained: bool = False


@dataclass
class Diagnosis:
    """A classic mistake that reproduces the student's wrong outputs (on ``cases``)."""

    key: str
    message: str
    outputs: list[str]
    cases: list[int] = field(default_factory=list)


@dataclass
class CheckResult:
    """What a check found. ``bool()`` is the verdict, ``str()`` the report."""

    name: str
    cases: list[CaseResult]
    diagnoses: list[Diagnosis] = field(default_factory=list)
    summary: str = ""  # one line when something happened on every case (e.g. a raise)
    values_wrong: bool = False  # some output had the right shape but wrong values
    passed_note: str = ""

    @property
    def passed(self) -> bool:
        return bool(self.cases) and all(c.passed for c in self.cases)

    @property
    def cases_passed(self) -> int:
        return sum(c.passed for c in self.cases)

    @property
    def score(self) -> float:
        """The fraction of cases passed, in [0, 1]."""
        return self.cases_passed / len(self.cases) if self.cases else 0.0

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        total = len(self.cases)
        if self.passed:
            note = f"\n({self.passed_note})" if self.passed_note else ""
            return f"bnlib.check.{self.name}: passed all {total} cases.{note}"
        lines = [f"bnlib.check.{self.name}: FAILED, {self.cases_passed} of {total} cases passed."]
        if self.summary:
            lines += ["", self.summary]
        for d in self.diagnoses:
            lines += ["", f"Diagnosis ({', '.join(d.outputs)}): {d.message}"]
        if self.values_wrong and not self.diagnoses:
            lines += ["", "No classic mistake reproduces your output; compare the numbers below."]
        failing = [c for c in self.cases if not c.passed]
        shown = failing[:1] if self.summary else failing[:4]  # a summary says it for all
        lines += ["", "For example:" if self.summary else "Failing cases:"]
        for c in shown:
            lines.append(f"  {c.case}:")
            lines += [f"    {p}" for p in c.problems]
        if len(failing) > len(shown):
            lines.append(f"  ... and {len(failing) - len(shown)} more failing cases.")
        return "\n".join(lines)

    __repr__ = __str__

    def to_dict(self) -> dict:
        """A JSON-ready summary (used by the grader)."""
        return {
            "check": self.name,
            "passed": self.passed,
            "cases_passed": self.cases_passed,
            "cases_total": len(self.cases),
            "diagnoses": [
                {"mistake": d.key, "outputs": d.outputs, "message": d.message}
                for d in self.diagnoses
            ],
            "cases": [
                {
                    "case": c.case,
                    "passed": c.passed,
                    "values_ok": c.values_ok,
                    "dtype_wrong": c.dtype_wrong,
                    "modified": c.modified,
                    "explained": c.explained,
                    "problems": c.problems,
                }
                for c in self.cases
            ],
            "summary": self.summary,
            "report": str(self),
        }


# --------------------------------------------------------------------------------------
# The three checks of the batch norm homework
# --------------------------------------------------------------------------------------


def _trials(cases, call, with_momentum: bool = False) -> list[Trial]:
    return [Trial(c.describe(with_momentum), call(c.data(), c), np.dtype(c.dtype)) for c in cases]


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
    public=lambda: _trials(CASES, _forward_args),
    hidden=lambda rng: _trials(hidden_cases(rng), _forward_args),
    variant=lambda x, g, b, eps, **o: (forward_variant(x, g, b, eps, **o),),
    mistakes=FORWARD_MISTAKES,
    passed_note=_covered(),
)
BACKWARD = Check(
    name="backward",
    arg_names=("dy", "x", "gamma", "eps"),
    outputs=("dx", "dgamma", "dbeta"),
    reference=reference_backward,
    public=lambda: _trials(CASES, _backward_args),
    hidden=lambda rng: _trials(hidden_cases(rng), _backward_args),
    variant=backward_variant,
    mistakes=BACKWARD_MISTAKES,
    passed_note=_covered(),
)
RUNNING_STATS = Check(
    name="running_stats",
    arg_names=("running_mean", "running_var", "x", "momentum"),
    outputs=("new_mean", "new_var"),
    reference=reference_running_stats,
    public=lambda: _trials(CASES, _running_args, with_momentum=True),
    hidden=lambda rng: _trials(hidden_cases(rng), _running_args, with_momentum=True),
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


# ======================================================================================
# Homework 2 (chapters/09_homework_2.md): group norm, merging shard statistics, folding.
# Each is a Check: its own battery of public cases, hidden_*_cases(rng) for fresh draws,
# wrong references for its classic mistakes, and the reference it compares with.
# ======================================================================================


# --------------------------------------------------------------------------------------
# Group norm: fn(x, num_groups, gamma, beta, eps) -> y
# --------------------------------------------------------------------------------------


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
)


def hidden_group_norm_cases(rng: np.random.Generator) -> list[GroupNormCase]:
    """Fresh random cases, one per public case and with its edge: N = 1, 1×1 maps, one
    group, C groups, float32 and float64, large ε."""
    cases = []
    for template in GROUP_NORM_CASES:
        n, c, h, w = template.shape
        groups = 1 if template.groups == 1 else int(rng.integers(2, 5))
        per_group = 1 if template.groups == c else int(rng.integers(2, 4))
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
    ),
    Mistake(
        "gn_instance_axes",
        "statistics per sample and channel, over H and W only: instance norm (group norm "
        "with num_groups = C). Pool the C/G channels of a group together: "
        "x.reshape(N, G, -1), then reduce over the last axis.",
        {"pooling": "instance"},
    ),
    Mistake(
        "gn_layer_axes",
        "statistics per sample over all the channels: layer norm (group norm with "
        "num_groups = 1). Each group of C/G channels has its own μ and σ².",
        {"pooling": "layer"},
    ),
    Mistake(
        "gn_interleaved_groups",
        "the groups are interleaved: channel c went to group c % G, as "
        "x.reshape(N, C // G, G, H, W) puts it. A group is C/G consecutive channels (group g "
        "holds channels g·C/G to (g + 1)·C/G − 1): x.reshape(N, G, C // G, H, W), the group "
        "axis before the channels within a group.",
        {"pooling": "interleaved"},
    ),
    Mistake(
        "gn_unbiased_variance",
        "the unbiased variance (÷ (m − 1), with m = (C/G)·H·W values per group) normalizes. "
        "Group norm, like batch norm, uses the biased variance (÷ m): np.var's default ddof=0.",
        {"ddof": 1},
    ),
    Mistake(
        "gn_eps_outside_sqrt",
        "ε is outside the square root: you divide by √σ² + ε; group norm divides by "
        "√(σ² + ε). Add ε to the variance, then take the square root.",
        {"eps_outside": True},
    ),
    Mistake(
        "gn_affine_per_group",
        "γ and β are applied per group: every channel of group g gets gamma[g] and beta[g]. "
        "They hold one value per channel: channel c gets gamma[c] and beta[c] (apply them "
        "after reshaping back to (N, C, H, W), with gamma.reshape(1, C, 1, 1)).",
        {"affine": "group"},
    ),
    Mistake(
        "gn_no_affine",
        "γ and β are not applied: after normalizing, y = γ·x̂ + β, one γ and β per channel.",
        {"affine": "none"},
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
    public=lambda: _trials(GROUP_NORM_CASES, _group_norm_args),
    hidden=lambda rng: _trials(hidden_group_norm_cases(rng), _group_norm_args),
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


# --------------------------------------------------------------------------------------
# Merging per-shard statistics: fn(count_a, mean_a, m2_a, count_b, mean_b, m2_b)
#   -> (count, mean, m2)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MergeCase:
    """Two shards of ``count_a`` and ``count_b`` values per channel, ``channels`` channels."""

    channels: int
    count_a: int
    count_b: int
    dtype: type
    seed: int = 0

    def describe(self, with_momentum: bool = False) -> str:
        return (
            f"shards of {self.count_a} and {self.count_b} values, {self.channels} channel"
            f"{'s' if self.channels > 1 else ''}, {np.dtype(self.dtype).name}"
        )

    def values(self) -> tuple[np.ndarray, np.ndarray]:
        """The two shards' seeded values, float64 arrays ``(count_a, C)`` and ``(count_b, C)``;
        their means differ by 1 to 4 per channel, so that the δ² term matters."""
        rng = np.random.default_rng(self.seed)
        c = self.channels
        loc_a = rng.uniform(-2.0, 2.0, c)
        loc_b = loc_a + rng.choice([-1.0, 1.0], c) * rng.uniform(1.0, 4.0, c)
        return tuple(
            loc + rng.uniform(0.5, 2.0, c) * rng.standard_normal((count, c))
            for count, loc in ((self.count_a, loc_a), (self.count_b, loc_b))
        )

    def data(self) -> dict:
        """Each shard's mean and M2 = Σ(x − mean)² per channel, computed in float64 and
        rounded to the dtype; an empty shard has mean 0 and M2 0."""
        data = {}
        for shard, values in zip("ab", self.values(), strict=True):
            mean = values.mean(axis=0) if len(values) else np.zeros(self.channels)
            data[f"mean_{shard}"] = mean.astype(self.dtype)
            data[f"m2_{shard}"] = ((values - mean) ** 2).sum(axis=0).astype(self.dtype)
        return data


MERGE_CASES = (
    MergeCase(3, 12, 30, np.float64, seed=21),
    MergeCase(3, 12, 30, np.float32, seed=22),
    MergeCase(4, 1, 20, np.float64, seed=23),  # a shard of one value: its M2 is 0
    MergeCase(2, 50, 50, np.float32, seed=24),  # equal shards
    MergeCase(1, 7, 200, np.float64, seed=25),  # one channel, very unequal shards
    MergeCase(3, 0, 16, np.float64, seed=26),  # an empty shard
    MergeCase(2, 64, 9, np.float32, seed=27),
)


def hidden_merge_cases(rng: np.random.Generator) -> list[MergeCase]:
    """Fresh random cases, one per public case and with its edge: an empty shard, a shard
    of one value, equal shards, very unequal ones (20 times or more), one channel, float32
    and float64."""
    cases = []
    for t in MERGE_CASES:
        channels = 1 if t.channels == 1 else int(rng.integers(2, 6))
        count_a = t.count_a if t.count_a < 2 else int(rng.integers(2, 80))
        if t.count_b == t.count_a:
            count_b = count_a
        elif t.count_b >= 20 * max(t.count_a, 1):
            count_b = max(count_a, 1) * int(rng.integers(20, 40))
        else:
            count_b = int(rng.integers(2, 200))
            count_b += count_b == count_a  # unequal, as in the template
        cases.append(MergeCase(channels, count_a, count_b, t.dtype, int(rng.integers(2**31))))
    return cases


MERGE_MISTAKES = (
    Mistake(
        "merge_unweighted_mean",
        "the means are averaged without their counts: (mean_a + mean_b)/2 is the mean of the "
        "union only when the shards are equal. Weight each by its count: mean = mean_a + "
        "δ·n_b/n, with δ = mean_b − mean_a and n = n_a + n_b.",
        {"mean": "unweighted"},
    ),
    Mistake(
        "merge_swapped_weights",
        "each mean is weighted by the other shard's count: (n_b·mean_a + n_a·mean_b)/n. The "
        "larger shard weighs more: mean = (n_a·mean_a + n_b·mean_b)/n = mean_a + δ·n_b/n.",
        {"mean": "swapped"},
    ),
    Mistake(
        "merge_no_delta_term",
        "M2 is m2_a + m2_b: that misses the spread between the shards' means. Each shard's M2 "
        "is around its own mean, not the union's: M2 = m2_a + m2_b + δ²·n_a·n_b/n.",
        {"m2": "no_delta"},
    ),
    Mistake(
        "merge_inputs_as_variances",
        "m2_a and m2_b are used as variances (multiplied by their counts): they already are "
        "sums of squares, M2 = Σ(x − mean)² = n·σ². M2 = m2_a + m2_b + δ²·n_a·n_b/n.",
        {"m2": "inputs_as_variances"},
    ),
    Mistake(
        "merge_returns_variance",
        "the third output is the merged variance M2/n: return M2 itself, the sum of squares "
        "Σ(x − mean)² (divide by n only when you need the variance).",
        {"returns": "variance"},
    ),
    Mistake(
        "merge_delta_over_n_minus_1",
        "the δ² term divides by the wrong count: δ²·n_a·n_b/(n − 1). M2 is a plain sum of "
        "squares; it is exact with δ²·n_a·n_b/n.",
        {"m2": "n_minus_1"},
    ),
    Mistake(
        "merge_delta_over_n_squared",
        "the δ² term divides by the wrong count: δ²·n_a·n_b/n² is the variance's version of the "
        "term (for σ² = M2/n). For M2 it is δ²·n_a·n_b/n.",
        {"m2": "n_squared"},
    ),
)


def merge_variant(
    count_a, mean_a, m2_a, count_b, mean_b, m2_b, *, mean="weighted", m2="chan",
    returns="m2",
) -> tuple:  # fmt: skip
    """Chan's merge with chosen mistakes, in float64, means and M2 in ``mean_a``'s dtype."""
    dtype = mean_a.dtype
    mean_a, m2_a = mean_a.astype(np.float64), m2_a.astype(np.float64)
    mean_b, m2_b = mean_b.astype(np.float64), m2_b.astype(np.float64)
    n = count_a + count_b
    delta = mean_b - mean_a
    merged_mean = {
        "weighted": mean_a + delta * count_b / n,
        "unweighted": (mean_a + mean_b) / 2,
        "swapped": (count_b * mean_a + count_a * mean_b) / n,
    }[mean]
    term = delta**2 * count_a * count_b
    with np.errstate(all="ignore"):
        merged_m2 = {
            "chan": m2_a + m2_b + term / n,
            "no_delta": m2_a + m2_b,
            "inputs_as_variances": count_a * m2_a + count_b * m2_b + term / n,
            "n_minus_1": m2_a + m2_b + term / (n - 1),
            "n_squared": m2_a + m2_b + term / n**2,
        }[m2]
    if returns == "variance":
        merged_m2 = merged_m2 / n
    return np.asarray(n), merged_mean.astype(dtype), merged_m2.astype(dtype)


def reference_merge_stats(count_a, mean_a, m2_a, count_b, mean_b, m2_b):
    """:func:`bnlib.stats.chan_merge`; the count as a 0-d integer array."""
    count, mean, m2 = stats.chan_merge(count_a, mean_a, m2_a, count_b, mean_b, m2_b)
    return np.asarray(count), mean, m2


def _merge_args(d, c):
    return (c.count_a, d["mean_a"], d["m2_a"], c.count_b, d["mean_b"], d["m2_b"])


MERGE_STATS = Check(
    name="merge_stats",
    arg_names=("count_a", "mean_a", "m2_a", "count_b", "mean_b", "m2_b"),
    outputs=("count", "mean", "m2"),
    reference=reference_merge_stats,
    public=lambda: _trials(MERGE_CASES, _merge_args),
    hidden=lambda rng: _trials(hidden_merge_cases(rng), _merge_args),
    variant=merge_variant,
    mistakes=MERGE_MISTAKES,
    passed_note="Empty and one-value shards, equal and unequal ones, float32 and float64.",
)


def merge_stats(fn: Callable) -> CheckResult:
    r"""Check ``fn(count_a, mean_a, m2_a, count_b, mean_b, m2_b) -> (count, mean, m2)``.

    Chan's exact merge of two shards' statistics, per channel (means and M2 of shape
    ``(C,)``, counts ints, M2 = Σ(x − mean)²): n = n_a + n_b, δ = mean_b − mean_a,
    mean = mean_a + δ·n_b/n, M2 = m2_a + m2_b + δ²·n_a·n_b/n. The count may come back as
    an int.
    """
    return MERGE_STATS(fn)


# --------------------------------------------------------------------------------------
# Folding batch norm into a convolution:
#   fn(conv_w, conv_b, running_mean, running_var, eps, gamma, beta) -> (weight, bias)
# --------------------------------------------------------------------------------------


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
        "the scale divides by the variance: γ/(σ² + ε). Batch norm divides by the standard "
        "deviation: s = γ/√(σ² + ε).",
        {"sqrt": False},
    ),
    Mistake(
        "fold_no_eps",
        "ε is missing: s = γ/√σ². Batch norm in eval mode divides by √(σ² + ε), with the "
        "layer's own ε; a small running variance (or a large ε) shows the difference.",
        {"eps_at": "none"},
    ),
    Mistake(
        "fold_eps_outside_sqrt",
        "ε is outside the square root: s = γ/(√σ² + ε). It is s = γ/√(σ² + ε).",
        {"eps_at": "outside"},
    ),
    Mistake(
        "fold_conv_bias_dropped",
        "the folded bias drops the convolution's own bias: β − s·μ is right only for a "
        "convolution without bias. b' = s·(b − μ) + β: the conv bias passes through BN too.",
        {"bias": "no_conv_bias"},
    ),
    Mistake(
        "fold_mean_not_subtracted",
        "the folded bias forgets the running mean: s·b + β. Batch norm subtracts μ before "
        "scaling: b' = s·(b − μ) + β.",
        {"bias": "no_mean"},
    ),
    Mistake(
        "fold_conv_bias_not_scaled",
        "the convolution's bias is not scaled: b + β − s·μ. The bias is part of the conv's "
        "output, which BN scales: b' = s·(b − μ) + β.",
        {"bias": "conv_bias_unscaled"},
    ),
    Mistake(
        "fold_bias_not_folded",
        "the bias is returned unchanged (the conv's own bias): batch norm's shift must be "
        "folded into it too, b' = s·(b − μ) + β (with b = 0 when conv_b is None).",
        {"bias": "unchanged"},
    ),
    Mistake(
        "fold_weight_wrong_axis",
        "the weight is scaled along its input channels (axis 1): batch norm scales the "
        "conv's output channels, the weight's axis 0: W' = W·s.reshape(-1, 1, 1, 1).",
        {"axis": 1},
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
        s = gamma.astype(np.float64) / denom
    folded_bias = {
        "folded": s * (b - mu) + beta,
        "no_conv_bias": beta - s * mu,
        "no_mean": s * b + beta,
        "conv_bias_unscaled": b + beta - s * mu,
        "unchanged": b,
    }[bias]
    shape = [1] * conv_w.ndim
    shape[axis] = -1
    weight = conv_w.astype(np.float64) * s.reshape(shape)
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
    public=lambda: _trials(FOLD_CASES, _fold_args),
    hidden=lambda rng: _trials(hidden_fold_cases(rng), _fold_args),
    variant=fold_variant,
    mistakes=FOLD_MISTAKES,
    passed_note="No conv bias, 1×1 and depthwise kernels, float32 and float64, ε up to 1.",
)


def fold_bn(fn: Callable) -> CheckResult:
    r"""Check ``fn(conv_w, conv_b, running_mean, running_var, eps, gamma, beta) -> (weight,
    bias)``: an eval-mode batch norm folded into the convolution before it.

    With s = γ/√(σ² + ε) per output channel: W' = s·W along axis 0 (the output channels),
    b' = s·(b − μ) + β, where ``conv_b`` may be None (no bias: b = 0).
    """
    return FOLD_BN(fn)
