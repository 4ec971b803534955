"""bnlib.check: correct functions pass, each classic mistake fails with its diagnosis, and
a broken student function gets a report, never a crash of the checker."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import bnlib
from bnlib import check
from bnlib.check import homework_1

AXES = (0, 2, 3)


def col(v):
    return v.reshape(1, -1, 1, 1)


# --------------------------------------------------------------------------------------
# Student functions, written by hand as a student would (not through bnlib.check)
# --------------------------------------------------------------------------------------


def forward_ok(x, gamma, beta, eps):
    mean = x.mean(axis=AXES, keepdims=True)
    var = x.var(axis=AXES, keepdims=True)
    return col(gamma) * (x - mean) / np.sqrt(var + eps) + col(beta)


def forward_moments(x, gamma, beta, eps):
    """Correct, but with var = E[x²] − E[x]² in the input's dtype: still within tolerance."""
    mean = x.mean(axis=AXES, keepdims=True)
    var = (x * x).mean(axis=AXES, keepdims=True) - mean * mean
    return col(gamma) * (x - mean) / np.sqrt(var + eps) + col(beta)


def forward_eps_outside(x, gamma, beta, eps):
    mean = x.mean(axis=AXES, keepdims=True)
    std = x.std(axis=AXES, keepdims=True)
    return col(gamma) * (x - mean) / (std + eps) + col(beta)


def forward_unbiased(x, gamma, beta, eps):
    mean = x.mean(axis=AXES, keepdims=True)
    var = x.var(axis=AXES, keepdims=True, ddof=1)
    return col(gamma) * (x - mean) / np.sqrt(var + eps) + col(beta)


def forward_torch_std(x, gamma, beta, eps):
    """torch.std's default is unbiased, and ε lands outside the root: two mistakes."""
    mean = x.mean(axis=AXES, keepdims=True)
    std = x.std(axis=AXES, keepdims=True, ddof=1)
    return col(gamma) * (x - mean) / (std + eps) + col(beta)


def forward_per_sample(x, gamma, beta, eps):
    mean = x.mean(axis=(2, 3), keepdims=True)
    var = x.var(axis=(2, 3), keepdims=True)
    return col(gamma) * (x - mean) / np.sqrt(var + eps) + col(beta)


def forward_layer_norm(x, gamma, beta, eps):
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    var = x.var(axis=(1, 2, 3), keepdims=True)
    return col(gamma) * (x - mean) / np.sqrt(var + eps) + col(beta)


def forward_float64_out(x, gamma, beta, eps):
    return forward_ok(x.astype(np.float64), gamma, beta, eps)


def forward_in_place(x, gamma, beta, eps):
    x -= x.mean(axis=AXES, keepdims=True)
    x /= np.sqrt((x * x).mean(axis=AXES, keepdims=True) + eps)
    return col(gamma) * x + col(beta)


def forward_no_keepdims(x, gamma, beta, eps):
    mean = x.mean(axis=AXES)  # shape (C,): broadcasts against W, not C
    return (x - mean) / np.sqrt(x.var(axis=AXES) + eps)


def forward_nan(x, gamma, beta, eps):
    mean = x.mean(axis=AXES, keepdims=True)
    return col(gamma) * (x - mean) / np.sqrt(x.var(axis=AXES, keepdims=True) - 10.0)


def backward_ok(dy, x, gamma, eps):
    m = x.size // x.shape[1]
    mean = x.mean(axis=AXES, keepdims=True)
    invstd = 1 / np.sqrt(x.var(axis=AXES, keepdims=True) + eps)
    xhat = (x - mean) * invstd
    dbeta, dgamma = dy.sum(axis=AXES), (dy * xhat).sum(axis=AXES)
    dx = col(gamma) * invstd / m * (m * dy - col(dbeta) - xhat * col(dgamma))
    return dx, dgamma, dbeta


def backward_no_paths(dy, x, gamma, eps):
    mean = x.mean(axis=AXES, keepdims=True)
    invstd = 1 / np.sqrt(x.var(axis=AXES, keepdims=True) + eps)
    xhat = (x - mean) * invstd
    return col(gamma) * invstd * dy, (dy * xhat).sum(axis=AXES), dy.sum(axis=AXES)


def backward_no_mean_path(dy, x, gamma, eps):
    m = x.size // x.shape[1]
    mean = x.mean(axis=AXES, keepdims=True)
    invstd = 1 / np.sqrt(x.var(axis=AXES, keepdims=True) + eps)
    xhat = (x - mean) * invstd
    dbeta, dgamma = dy.sum(axis=AXES), (dy * xhat).sum(axis=AXES)
    dx = col(gamma) * invstd / m * (m * dy - xhat * col(dgamma))
    return dx, dgamma, dbeta


def backward_dgamma_x(dy, x, gamma, eps):
    dx, _, dbeta = backward_ok(dy, x, gamma, eps)
    return dx, (dy * x).sum(axis=AXES), dbeta


def backward_two_values(dy, x, gamma, eps):
    return backward_ok(dy, x, gamma, eps)[:2]


def running_ok(running_mean, running_var, x, momentum):
    mean, var = x.mean(axis=AXES), x.var(axis=AXES, ddof=1)
    return (1 - momentum) * running_mean + momentum * mean, (
        1 - momentum
    ) * running_var + momentum * var


def running_in_place(running_mean, running_var, x, momentum):
    """PyTorch updates its buffers in place: allowed, the returned arrays count."""
    running_mean *= 1 - momentum
    running_mean += momentum * x.mean(axis=AXES)
    running_var *= 1 - momentum
    running_var += momentum * x.var(axis=AXES, ddof=1)
    return running_mean, running_var


def running_biased(running_mean, running_var, x, momentum):
    mean, var = x.mean(axis=AXES), x.var(axis=AXES)
    return (1 - momentum) * running_mean + momentum * mean, (
        1 - momentum
    ) * running_var + momentum * var


def running_keras(running_mean, running_var, x, momentum):
    mean, var = x.mean(axis=AXES), x.var(axis=AXES, ddof=1)
    return momentum * running_mean + (1 - momentum) * mean, momentum * running_var + (
        1 - momentum
    ) * var


def running_returns_none(running_mean, running_var, x, momentum):
    running_ok(running_mean, running_var, x, momentum)


def keys(result) -> set[str]:
    return {d.key for d in result.diagnoses}


# --------------------------------------------------------------------------------------
# The battery and its references
# --------------------------------------------------------------------------------------


def test_battery_covers_the_required_cases():
    shapes = [c.shape for c in homework_1.CASES]
    assert any(n == 1 and h * w > 1 for n, _, h, w in shapes)  # N = 1
    assert any(h * w == 1 and n > 1 for n, _, h, w in shapes)  # 1×1 spatial
    assert all(n * h * w > 1 for n, _, h, w in shapes)  # training is defined
    assert {np.dtype(c.dtype) for c in homework_1.CASES} == {
        np.dtype("float32"),
        np.dtype("float64"),
    }
    assert (
        min(c.eps for c in homework_1.CASES) <= 1e-5 and max(c.eps for c in homework_1.CASES) >= 0.5
    )
    assert 0.5 not in {c.momentum for c in homework_1.CASES}  # Keras's way equals PyTorch's there


@pytest.mark.parametrize("case", homework_1.CASES, ids=lambda c: c.describe(True))
def test_references_agree_with_pytorch(case):
    d = case.data()
    tol = dict(rtol=1e-4, atol=1e-5) if case.dtype == np.float32 else dict(rtol=1e-9, atol=1e-12)
    x = torch.from_numpy(d["x"]).requires_grad_()
    w, b = torch.from_numpy(d["gamma"]).requires_grad_(), torch.from_numpy(d["beta"])
    rm, rv = torch.from_numpy(d["running_mean"].copy()), torch.from_numpy(d["running_var"].copy())
    y = torch.nn.functional.batch_norm(x, rm, rv, w, b, True, case.momentum, case.eps)
    y.backward(torch.from_numpy(d["dy"]))
    np.testing.assert_allclose(
        homework_1.reference_forward(d["x"], d["gamma"], d["beta"], case.eps)[0], y.detach(), **tol
    )
    dx, dgamma, dbeta = homework_1.reference_backward(d["dy"], d["x"], d["gamma"], case.eps)
    np.testing.assert_allclose(dx, x.grad, **tol)
    np.testing.assert_allclose(dgamma, w.grad, **tol)
    new_mean, new_var = homework_1.reference_running_stats(
        d["running_mean"], d["running_var"], d["x"], case.momentum
    )
    np.testing.assert_allclose(new_mean, rm, **tol)
    np.testing.assert_allclose(new_var, rv, **tol)


# --------------------------------------------------------------------------------------
# Passing
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("checker", "fn"),
    [
        (check.forward, forward_ok),
        (check.forward, forward_moments),
        (
            check.forward,
            lambda x, g, b, eps: bnlib.batch_norm(x, weight=g, bias=b, training=True, eps=eps),
        ),
        (check.backward, backward_ok),
        (check.backward, bnlib.batch_norm_backward_staged),
        (check.running_stats, running_ok),
        (check.running_stats, running_in_place),
    ],
)
def test_correct_functions_pass_with_full_marks(checker, fn):
    result = checker(fn)
    assert result, str(result)
    assert bool(result) is True
    assert result.score == 1.0 and result.cases_passed == len(homework_1.CASES)
    assert not result.diagnoses
    assert "passed all" in str(result) and "FAILED" not in str(result)


@pytest.mark.parametrize(
    ("verdicts", "says"),
    [
        ([True], "passed the 1 case."),
        ([True] * 3, "passed all 3 cases."),
        ([False], "FAILED, 0 of 1 case passed."),
        ([True, False, False], "FAILED, 1 of 3 cases passed."),
        ([False] * 5, "... and 1 more failing case."),
        ([False] * 6, "... and 2 more failing cases."),
    ],
)
def test_the_report_counts_its_cases_in_the_singular_or_the_plural(verdicts, says):
    cases = [
        check.CaseResult(f"case {k}", ok, [] if ok else ["wrong"]) for k, ok in enumerate(verdicts)
    ]
    report = str(check.CheckResult("forward", cases))
    assert says in report
    assert "1 cases" not in report and "1 more failing cases" not in report


# --------------------------------------------------------------------------------------
# Each classic mistake, with its diagnosis
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("checker", "fn", "expected", "outputs"),
    [
        (check.forward, forward_eps_outside, {"eps_outside_sqrt"}, ["y"]),
        (check.forward, forward_unbiased, {"unbiased_variance"}, ["y"]),
        (check.forward, forward_torch_std, {"eps_outside_sqrt", "unbiased_variance"}, ["y"]),
        (check.forward, forward_per_sample, {"wrong_axes_23"}, ["y"]),
        (check.forward, forward_layer_norm, {"wrong_axes_123"}, ["y"]),
        (check.backward, backward_no_paths, {"no_mean_var_paths"}, ["dx"]),
        (check.backward, backward_no_mean_path, {"no_mean_path"}, ["dx"]),
        (check.backward, backward_dgamma_x, {"dgamma_uses_x"}, ["dgamma"]),
        (check.running_stats, running_biased, {"biased_running_var"}, ["new_var"]),
        (check.running_stats, running_keras, {"keras_momentum"}, ["new_mean", "new_var"]),
    ],
)
def test_classic_mistake_is_diagnosed_by_name(checker, fn, expected, outputs):
    result = checker(fn)
    assert not result
    assert keys(result) == expected, str(result)
    for d in result.diagnoses:
        assert d.outputs == outputs
    report = str(result)
    assert "FAILED" in report and "max abs error" in report
    for d in result.diagnoses:
        assert d.message in report


def test_several_mistakes_in_one_submission_are_each_named():
    def running_both(running_mean, running_var, x, momentum):
        mean, var = x.mean(axis=AXES), x.var(axis=AXES)  # biased, and Keras's momentum
        return momentum * running_mean + (1 - momentum) * mean, momentum * running_var + (
            1 - momentum
        ) * var

    result = check.running_stats(running_both)
    by_key = {d.key: d.outputs for d in result.diagnoses}
    assert by_key == {"keras_momentum": ["new_mean", "new_var"], "biased_running_var": ["new_var"]}

    def backward_both(dy, x, gamma, eps):
        dx, _, dbeta = backward_no_paths(dy, x, gamma, eps)
        return dx, (dy * x).sum(axis=AXES), dbeta

    result = check.backward(backward_both)
    assert {d.key: d.outputs for d in result.diagnoses} == {
        "no_mean_var_paths": ["dx"],
        "dgamma_uses_x": ["dgamma"],
    }


@pytest.mark.parametrize(
    ("checker", "variant", "mistakes"),
    [
        (
            check.forward,
            lambda *a, **o: homework_1.forward_variant(*a, **o),
            homework_1.FORWARD_MISTAKES,
        ),
        (check.backward, homework_1.backward_variant, homework_1.BACKWARD_MISTAKES),
        (check.running_stats, homework_1.running_variant, homework_1.RUNNING_MISTAKES),
    ],
    ids=["forward", "backward", "running_stats"],
)
def test_every_listed_mistake_is_observable_and_told_apart(checker, variant, mistakes):
    """The battery exposes each mistake, and names it and no other."""
    for mistake in mistakes:

        def student(*args, _options=mistake.options):
            return variant(*args, **_options)

        result = checker(student)
        assert not result, mistake.key
        assert keys(result) == {mistake.key}, (mistake.key, str(result))


def test_unexplained_wrong_values_say_so_with_the_numbers():
    def forward_off(x, gamma, beta, eps):
        return forward_ok(x, gamma, beta, eps) * np.asarray(1.01, x.dtype)

    result = check.forward(forward_off)
    assert not result and not result.diagnoses
    report = str(result)
    assert "No classic mistake reproduces your output" in report
    assert "max abs error" in report and "at index (" in report and "case 1 (" in report


# --------------------------------------------------------------------------------------
# Broken functions get a report, not a crash
# --------------------------------------------------------------------------------------


def test_not_implemented_is_reported_as_such():
    def stub(x, gamma, beta, eps):
        raise NotImplementedError

    result = check.forward(stub)
    assert not result and result.cases_passed == 0
    assert "Not implemented yet" in str(result)


def test_a_raise_is_reported_with_the_students_line():
    result = check.forward(forward_no_keepdims)
    report = str(result)
    assert not result
    assert "raised ValueError" in report and "operands could not be broadcast" in report
    assert "in forward_no_keepdims, line" in report and "`mean = " not in report


def test_wrong_dtype_is_reported():
    result = check.forward(forward_float64_out)
    assert not result
    assert result.cases_passed == sum(c.dtype == np.float64 for c in homework_1.CASES)
    assert "has dtype float64 for a float32 input" in str(result)
    assert not result.values_wrong


def test_wrong_shape_and_wrong_count_and_none_are_reported():
    def forward_flat(x, gamma, beta, eps):
        return forward_ok(x, gamma, beta, eps).ravel()

    assert "y has shape (" in str(check.forward(forward_flat))
    assert "returned 2 values; expected 3: dx, dgamma, dbeta" in str(
        check.backward(backward_two_values)
    )
    assert "returned None" in str(check.running_stats(running_returns_none))
    assert "is a list; expected a NumPy array" in str(
        check.forward(lambda x, g, b, eps: forward_ok(x, g, b, eps).tolist())
    )


def test_torch_tensor_output_is_reported():
    result = check.forward(lambda x, g, b, eps: torch.from_numpy(forward_ok(x, g, b, eps)))
    assert not result and "torch tensor" in str(result)


def test_nan_output_is_reported():
    result = check.forward(forward_nan)
    assert not result and "NaN or infinite" in str(result)


def test_modifying_the_input_in_place_is_reported():
    result = check.forward(forward_in_place)
    assert not result and "changed its input x in place" in str(result)


def test_not_a_function_is_reported():
    result = check.backward(None)
    assert not result and "expected your function" in str(result)


def test_to_dict_is_json_ready():
    import json

    d = check.running_stats(running_keras).to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["check"] == "running_stats" and d["passed"] is False
    assert d["diagnoses"][0]["mistake"] == "keras_momentum"
