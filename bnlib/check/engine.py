r"""The check engine: a :class:`Check` of one student function, the :class:`Trial` inputs
it runs, what the function :class:`Returned`, and the :class:`CheckResult` a student reads.

A check runs the student's function on a battery of cases and compares what comes back
with an independent reference. When values are wrong, each classic :class:`Mistake` (a
wrong reference, implemented on purpose) is tried on the same cases: a mistake is
diagnosed when it reproduces the student's output on every case the student got wrong.
Each mistake carries its key, the message a student reads and the points it costs
(the grader's default rubric).

:func:`call` runs a function on one trial; :func:`assess` compares what came back with the
reference and diagnoses. A check cell does both in the student's kernel; the grader
(``grader/``) makes the calls in a sandbox and runs :func:`assess` in its own process.
The homework's checks live beside this module, one module per homework.
"""

from __future__ import annotations

import itertools
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from bnlib._validate import is_torch_tensor


@dataclass(frozen=True)
class Mistake:
    """A classic mistake: a key, what to tell the student, how to reproduce it, and the points
    it costs by default."""

    key: str
    message: str
    options: dict = field(default_factory=dict)  # keyword arguments of the wrong reference
    deduction: float = 1.0  # points it costs, by default (a rubric file may change it)


TOLERANCE = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-9}


def close(
    got: np.ndarray, expected: np.ndarray, dtype, loosen: float = 1.0, equal_nan: bool = False
) -> bool:
    """|got − expected| ≤ tol·max(1, max|expected|) everywhere, tol by dtype (NaN fails,
    unless ``equal_nan``: a wrong reference that gives NaN where the student got NaN);
    integers (counts) must be exact, other dtypes than float32 and float64 get float16's
    1e-2."""
    exact = np.dtype(dtype).kind in "iu"
    tol = 0.0 if exact else loosen * TOLERANCE.get(np.dtype(dtype), 1e-2)
    got, expected = np.asarray(got, np.float64), np.asarray(expected, np.float64)
    both_nan = np.isnan(got) & np.isnan(expected) if equal_nan else False
    scale = max(1.0, float(np.nanmax(np.abs(expected), initial=0.0)))
    diff = np.abs(got - expected)
    return bool(np.all((diff <= tol * scale) | both_nan))


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


def make_trials(cases, args: Callable, with_momentum: bool = False) -> list[Trial]:
    """One :class:`Trial` per case: ``args(case.data(), case)`` are the function's arguments.

    A case has ``describe(with_momentum)``, ``data()`` (its seeded arrays) and ``dtype``."""
    return [Trial(c.describe(with_momentum), args(c.data(), c), np.dtype(c.dtype)) for c in cases]


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
        if is_torch_tensor(value):
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
    Per case: the values (compared at the tolerance of the case's dtype, the input's: never
    the output's, so that returning float16 buys no slack), the dtype, and whether an input
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
            if not close(got, exp, trial.dtype):
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
    single mistakes first, then pairs made together (e.g. ε outside √ with ddof=1); an output
    that the mistakes already named reproduce, made together, is put down to them. A mistake
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

    def reproduces(combo, k, indices) -> bool:
        return all(
            got_by_case[i][k].shape == wrong_reference(combo, i)[k].shape
            and close(
                got_by_case[i][k],
                wrong_reference(combo, i)[k],
                trials[i].dtype,
                loosen=10,
                equal_nan=True,
            )
            for i in indices
        )

    found: dict[str, Diagnosis] = {}
    by_key = {m.key: m for m in mistakes}
    for k, indices in wrong.items():
        if not indices:
            continue
        # the mistakes already named, made together, may explain this output too (a coarse
        # output, such as an accuracy, may also match other mistakes by chance)
        named = tuple(by_key[key] for key in found)
        keys_used = [key for m in named for key in m.options]
        if named and len(keys_used) == len(set(keys_used)) and reproduces(named, k, indices):
            for diagnosis in found.values():
                diagnosis.outputs.append(check.outputs[k])
                diagnosis.cases = sorted(set(diagnosis.cases) | set(indices))
            continue
        for combos in candidates:
            matched = [combo for combo in combos if reproduces(combo, k, indices)]
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


def _cases(n: int) -> str:
    """``1 case``, ``3 cases``: a count of cases, in the singular or the plural."""
    return f"{n} case" if n == 1 else f"{n} cases"


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
            passed = "the 1 case" if total == 1 else f"all {total} cases"
            return f"bnlib.check.{self.name}: passed {passed}.{note}"
        of = f"{self.cases_passed} of {_cases(total)}"
        lines = [f"bnlib.check.{self.name}: FAILED, {of} passed."]
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
            more = len(failing) - len(shown)
            lines.append(f"  ... and {more} more failing {'case' if more == 1 else 'cases'}.")
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
