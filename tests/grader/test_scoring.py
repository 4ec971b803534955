"""Scoring, outside the sandbox: the rubric (each mistake's own deduction, a TOML file over
it), and judging that does not depend on what the student returns."""

from __future__ import annotations

import numpy as np
import pytest

from bnlib import check
from bnlib.check import homework_1
from grader import homeworks, scoring

HW = homeworks.HOMEWORKS["05_homework"]
FORWARD = HW.parts[0]


def keras(running_mean, running_var, x, momentum):
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3), ddof=1)
    return (momentum * running_mean + (1 - momentum) * mean,
            momentum * running_var + (1 - momentum) * var)  # fmt: skip


def forward_in(dtype):
    """The reference forward pass computed in ``dtype``, returned as it is or cast back."""

    def forward(x, gamma, beta, eps, cast_back=False):
        low = x.astype(dtype)
        mean = low.mean(axis=(0, 2, 3), keepdims=True, dtype=dtype)
        var = ((low - mean) ** 2).mean(axis=(0, 2, 3), keepdims=True, dtype=dtype)
        shape = (1, -1, 1, 1)
        y = gamma.astype(dtype).reshape(shape) * (low - mean) / np.sqrt(var + dtype(eps))
        y = y + beta.astype(dtype).reshape(shape)
        return y.astype(x.dtype) if cast_back else y

    return forward


def grade_forward(fn, seed=0) -> scoring.PartScore:
    trials = FORWARD.trials(np.random.default_rng(seed))
    returned = [check.call(fn, t, FORWARD.check.outputs) for t in trials]
    return scoring.assess(FORWARD, trials, returned, *scoring.rubric_for(FORWARD, HW, {}))


def test_the_returned_dtype_buys_no_tolerance():
    """The same float16 computation scores no more returned in float16 than cast back to
    the input's dtype: the tolerance is the input's (the case's), never the output's."""
    as_float16 = grade_forward(forward_in(np.float16))
    cast_back = grade_forward(lambda *a: forward_in(np.float16)(*a, cast_back=True))
    assert as_float16.points <= cast_back.points < FORWARD.points
    assert as_float16.cases_right == cast_back.cases_right == 0


def test_a_more_precise_output_is_a_dtype_slip_only():
    """Computed and returned in float64 for a float32 input: the values are right at the
    input's tolerance; the dtype costs its deduction, once."""
    result = grade_forward(forward_in(np.float64))
    assert [d["key"] for d in result.deductions] == [homeworks.DTYPE]
    assert result.points == FORWARD.points - FORWARD.deductions[homeworks.DTYPE]


def test_right_answers_score_full_marks_and_mistakes_their_deduction():
    assert grade_forward(lambda *a: homework_1.reference_forward(*a)[0]).points == FORWARD.points
    part = HW.parts[2]
    trials = part.trials(np.random.default_rng(0))
    returned = [check.call(keras, t, part.check.outputs) for t in trials]
    result = scoring.assess(part, trials, returned, *scoring.rubric_for(part, HW, {}))
    assert [d["key"] for d in result.deductions] == ["keras_momentum"]
    assert result.points == part.points - part.deductions["keras_momentum"]


def test_the_rubric_is_configurable(tmp_path):
    rubric_file = tmp_path / "rubric.toml"
    rubric_file.write_text(
        "[05_homework.running_stats]\npoints = 3\ndeductions = { keras_momentum = 2 }\n"
    )
    rubric = scoring.load_rubric(rubric_file)
    part = HW.parts[2]
    points, deductions = scoring.rubric_for(part, HW, rubric)
    assert points == 3 and deductions["keras_momentum"] == 2 and deductions["dtype"] == 0.25
    trials = part.trials(np.random.default_rng(0))
    returned = [check.call(keras, t, part.check.outputs) for t in trials]
    assert scoring.assess(part, trials, returned, points, deductions).points == 1
    assert scoring.effective_rubric(HW, rubric)["running_stats"]["points"] == 3
    for text, message in [
        ("[05_homework.nonsense]\npoints = 1\n", "no part 'nonsense'"),
        ("[05_homework.forward]\ndeductions = { eps_outsde = 1 }\n", "'eps_outsde'"),
        ("[05_homework.forward]\npoints = -1\n", "a number ≥ 0"),
        ("[homework_99.forward]\npoints = 1\n", "no homework 'homework_99'"),
    ]:
        rubric_file.write_text(text)
        with pytest.raises(SystemExit, match=message):
            scoring.load_rubric(rubric_file)


@pytest.mark.parametrize("hw", homeworks.HOMEWORKS.values(), ids=lambda hw: hw.name)
def test_every_registered_part_takes_its_mistakes_deductions(hw):
    """Each part's rubric is its check's mistakes, each at its own deduction (a typo would
    never apply), and each mistake costs less than the part is worth."""
    for part in hw.parts:
        mistakes = {m.key: m.deduction for m in part.check.mistakes}
        assert {k: part.deductions[k] for k in mistakes} == mistakes, part.name
        assert set(part.deductions) == set(mistakes) | {homeworks.DTYPE, homeworks.IN_PLACE}
        assert all(0 < v <= part.points for v in part.deductions.values()), part.name
        if part.check.arg_names:  # a function of inputs (not a choice made once)
            assert len(part.check.hidden(np.random.default_rng(0))) >= 4, part.name
