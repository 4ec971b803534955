"""Homework 2's newer checks: group norm's backward (against torch autograd and finite
differences), the recalibration of a torch model (against the statistics of each layer's
inputs, hooked out of torch), and the choice of foldable orders. Each classic mistake,
written by hand as a student would, is diagnosed by name."""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest
import torch

from bnlib import check
from bnlib.check.homework_2 import folding, gn_backward, gn_forward, recalibration


def keys(result) -> set[str]:
    return {d.key for d in result.diagnoses}


def col(v):
    return v.reshape(1, -1, 1, 1)


# --------------------------------------------------------------------------------------
# Group norm's backward
# --------------------------------------------------------------------------------------

CASES = gn_forward.GROUP_NORM_CASES + tuple(
    c for seed in (0, 1) for c in gn_forward.hidden_group_norm_cases(np.random.default_rng(seed))
)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.describe())
def test_backward_reference_agrees_with_torch_autograd(case):
    d = case.data()
    x, gamma, beta, dy = (d[k].astype(np.float64) for k in ("x", "gamma", "beta", "dy"))
    t = [torch.tensor(v, requires_grad=True) for v in (x, gamma, beta)]
    y = torch.nn.functional.group_norm(t[0], case.groups, t[1], t[2], case.eps)
    y.backward(torch.from_numpy(dy))
    ours = gn_backward.reference_group_norm_backward(dy, x, case.groups, gamma, case.eps)
    for mine, tensor in zip(ours, t, strict=True):
        np.testing.assert_allclose(mine, tensor.grad.numpy(), rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("groups", [1, 2, 3])
def test_backward_reference_agrees_with_finite_differences(groups):
    """Central differences of L = Σ dy·y, in float64, on an odd group size (3 channels)."""
    rng = np.random.default_rng(groups)
    shape = (2, 3 * groups, 2, 1)
    x, dy = rng.normal(1.0, 2.0, shape), rng.normal(size=shape)
    gamma, beta = rng.uniform(0.5, 2.0, shape[1]), rng.normal(size=shape[1])
    eps, h = 1e-3, 1e-6

    def loss(x_, g_, b_):
        y = gn_forward.group_norm_variant(x_, groups, g_, b_, eps)
        return float(np.sum(dy * y))

    dx, dgamma, dbeta = gn_backward.reference_group_norm_backward(dy, x, groups, gamma, eps)
    for value, grad, slot in ((x, dx, 0), (gamma, dgamma, 1), (beta, dbeta, 2)):
        numeric = np.empty_like(value)
        for i in np.ndindex(value.shape):
            args = [x.copy(), gamma.copy(), beta.copy()]
            args[slot][i] += h
            up = loss(*args)
            args[slot][i] -= 2 * h
            numeric[i] = (up - loss(*args)) / (2 * h)
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-7)


def gnb_right(dy, x, num_groups, gamma, eps):
    n, c = x.shape[:2]
    r = x.reshape(n, num_groups, -1)
    xhat = (r - r.mean(2, keepdims=True)) / np.sqrt(r.var(2, keepdims=True) + eps)
    dxhat = (dy * col(gamma)).reshape(r.shape)
    dx = dxhat - dxhat.mean(2, keepdims=True) - xhat * (dxhat * xhat).mean(2, keepdims=True)
    dx = (dx / np.sqrt(r.var(2, keepdims=True) + eps)).reshape(x.shape)
    return dx, (dy * xhat.reshape(x.shape)).sum((0, 2, 3)), dy.sum((0, 2, 3))


def gnb_planted(mistake):
    """A student's backward with one classic mistake, written out, not the checker's variant."""

    def fn(dy, x, num_groups, gamma, eps):
        n, c = x.shape[:2]
        r = x.reshape(n, num_groups, -1)
        inv = 1 / np.sqrt(r.var(2, keepdims=True) + eps)
        xhat = (r - r.mean(2, keepdims=True)) * inv
        g = np.repeat(gamma[:num_groups], c // num_groups) if mistake == "per_group" else gamma
        dyr = dy.reshape(r.shape)
        if mistake == "outside":  # batch norm's compact form, γ in front
            dx = dyr - dyr.mean(2, keepdims=True) - xhat * (dyr * xhat).mean(2, keepdims=True)
            dx = (dx * inv).reshape(x.shape) * col(gamma)
        else:
            dxhat = dyr if mistake == "no_gamma" else (dy * col(g)).reshape(r.shape)
            dx = dxhat.copy()
            if mistake not in ("no_mean", "no_paths"):
                dx = dx - dxhat.mean(2, keepdims=True)
            if mistake not in ("no_var", "no_paths"):
                dx = dx - xhat * (dxhat * xhat).mean(2, keepdims=True)
            dx = (dx * inv).reshape(x.shape)
        by = x if mistake == "dgamma_x" else xhat.reshape(x.shape)
        return dx, (dy * by).sum((0, 2, 3)), dy.sum((0, 2, 3))

    return fn


def test_a_right_backward_passes_public_and_hidden_cases():
    assert check.group_norm_backward(gnb_right)
    trials = check.GROUP_NORM_BACKWARD.hidden(np.random.default_rng(5))
    outputs = check.GROUP_NORM_BACKWARD.outputs
    hidden = check.assess(
        check.GROUP_NORM_BACKWARD, trials, [check.call(gnb_right, t, outputs) for t in trials]
    )
    assert hidden and hidden.score == 1.0, str(hidden)


@pytest.mark.parametrize(
    ("mistake", "expected"),
    [
        ("no_mean", "gnb_no_mean_path"),
        ("no_var", "gnb_no_var_path"),
        ("no_paths", "gnb_no_mean_var_paths"),
        ("outside", "gnb_gamma_outside_sums"),
        ("per_group", "gnb_gamma_per_group"),
        ("no_gamma", "gnb_no_gamma"),
        ("dgamma_x", "gnb_dgamma_uses_x"),
    ],
)
def test_each_backward_mistake_is_named(mistake, expected):
    result = check.group_norm_backward(gnb_planted(mistake))
    assert not result and keys(result) == {expected}, str(result)


def test_every_backward_mistake_is_observable_and_told_apart():
    for mistake in gn_backward.GROUP_NORM_BACKWARD_MISTAKES:

        def student(*args, _options=mistake.options):
            return gn_backward.group_norm_backward_variant(*args, **_options)

        result = check.group_norm_backward(student)
        assert keys(result) == {mistake.key}, (mistake.key, str(result))


# --------------------------------------------------------------------------------------
# Recalibration
# --------------------------------------------------------------------------------------


def recal_right(model, batches):
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None
    model.train()
    with torch.no_grad():
        for b in batches:
            model(b)
    return model.eval()


def recal_planted(mistake):
    def fn(model, batches):
        for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)):
            if mistake == "reset_parameters":
                bn.reset_parameters()
            elif mistake != "no_reset":
                bn.reset_running_stats()
            bn.momentum = 0.1 if mistake == "momentum" else None
        model.train(mistake != "eval_passes")
        with torch.set_grad_enabled(mistake == "grad"):
            for b in batches:
                model(b)
        return model if mistake == "train_mode" else model.eval()

    return fn


def test_recalibration_reference_is_the_mean_of_the_batch_statistics():
    """The reference (torch's recipe) against an independent computation: each layer's
    inputs hooked out of forward passes in training mode, batch by batch; its mean is the
    mean of the batch means, its variance the mean of the unbiased batch variances."""
    (trial,) = check.RECALIBRATE.public()
    params, mean, var, tracked, batches, test_x, test_y = trial.args
    ref_mean, ref_var = check.RECALIBRATE.reference(*trial.args)[:2]
    model = recalibration.build_model(params, mean, var, tracked).train()
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    seen: list[list] = [[] for _ in norms]
    for bn, inputs in zip(norms, seen, strict=True):
        bn.register_forward_pre_hook(lambda m, inp, inputs=inputs: inputs.append(inp[0].double()))
    with torch.no_grad():
        for b in batches:
            model(torch.from_numpy(b))  # training mode: each layer's input as in the recipe
    expected_mean = [torch.stack([s.mean(0) for s in inputs]).mean(0) for inputs in seen]
    expected_var = [torch.stack([s.var(0) for s in inputs]).mean(0) for inputs in seen]
    np.testing.assert_allclose(ref_mean, torch.cat(expected_mean).numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ref_var, torch.cat(expected_var).numpy(), rtol=1e-4, atol=1e-5)


def test_the_problem_is_stale_and_recalibration_recovers_it():
    p = check.recalibration_problem()

    def acc(model, x, y):
        with torch.no_grad():
            return (model(x).argmax(1) == y).float().mean().item()

    clean, stale = acc(p.model, p.clean_x, p.clean_y), acc(p.model, p.test_x, p.test_y)
    fixed = acc(recal_right(copy.deepcopy(p.model), p.batches), p.test_x, p.test_y)
    assert stale < clean - 0.15 and fixed > clean - 0.03, (clean, stale, fixed)
    assert not p.model.training


def test_a_right_recalibration_passes_public_and_hidden_cases():
    assert check.recalibrate(recal_right)
    trials = check.RECALIBRATE.hidden(np.random.default_rng(3))
    returned = [
        recalibration.call_recalibrate(recal_right, t, recalibration.OUTPUTS) for t in trials
    ]
    result = check.assess(check.RECALIBRATE, trials, returned)
    assert result and result.score == 1.0, str(result)


@pytest.mark.parametrize(
    ("mistake", "expected"),
    [
        ("momentum", {"recal_momentum"}),
        ("no_reset", {"recal_no_reset"}),
        ("eval_passes", {"recal_passes_in_eval"}),
        ("train_mode", {"recal_left_in_train_mode"}),
        ("grad", {"recal_with_grad"}),
        ("reset_parameters", {"recal_weights_touched"}),
    ],
)
def test_each_recalibration_mistake_is_named(mistake, expected):
    result = check.recalibrate(recal_planted(mistake))
    assert not result and keys(result) == expected, str(result)


def test_plain_forward_passes_name_both_the_momentum_and_the_missing_reset():
    def passes(model, batches):
        model.train()
        with torch.no_grad():
            for b in batches:
                model(b)
        return model.eval()

    assert keys(check.recalibrate(passes)) == {"recal_momentum", "recal_no_reset"}


def test_broken_recalibrations_get_a_report():
    def stub(model, batches):
        raise NotImplementedError

    assert "Not implemented yet" in str(check.recalibrate(stub))
    assert "returned None" in str(check.recalibrate(lambda m, b: None))
    assert "expected the model" in str(check.recalibrate(lambda m, b: 3))
    other = torch.nn.Sequential(torch.nn.Linear(12, 4))
    assert "return the model you were given" in str(check.recalibrate(lambda m, b: other))


# --------------------------------------------------------------------------------------
# Which orders fold
# --------------------------------------------------------------------------------------


def test_fold_orders_check_cell_records_without_a_verdict_nor_the_answer():
    """The book's page runs the check cell on the solution, above the collapsed answer: its
    report is the same whatever the three bools, and names none of them."""
    reports = {
        str(check.fold_orders(lambda a=a: a)) for a in itertools.product((True, False), repeat=3)
    }
    assert len(reports) == 1
    (report,) = reports
    assert "recorded" in report and "graded when you hand in" in report
    assert "FAILED" not in report and "passed" not in report
    assert "foldable" not in report and "True" not in report and "False" not in report
    assert "expected a tuple of 3 bools" in str(check.fold_orders(lambda: "yes"))

    def stub():
        raise NotImplementedError

    assert "Not implemented yet" in str(check.fold_orders(stub))


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ((True, False, True), set()),
        ((True, True, True), {"orders_zero_pad_foldable"}),
        ((True, False, False), {"orders_no_pad_not_foldable"}),
        ((False, False, True), {"orders_conv_bn_not_foldable"}),
        ((False, True, True), {"orders_conv_bn_not_foldable", "orders_zero_pad_foldable"}),
    ],
)
def test_fold_orders_are_graded_with_a_named_mistake(answer, expected):
    (trial,) = check.FOLD_ORDERS.hidden(np.random.default_rng(0))
    back = folding.call_fold_orders(lambda: answer, trial, check.FOLD_ORDERS.outputs)
    result = check.assess(check.FOLD_ORDERS, [trial], [back])
    assert bool(result) == (not expected) and keys(result) == expected, str(result)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recalibration_recovers_what_the_shift_cost_on_every_seed(seed):
    """On three trained models and shifts: the stale statistics cost accuracy, torch's
    recipe wins it back (the hidden cases' models and the page's)."""
    case = recalibration.RecalCase(seed, 20, 32, seed=100 + seed)
    args = recalibration._args(case.data(), case)
    stale = recalibration.recalibrate_variant(*args, reset=False, passes_in="eval")[5]
    fixed = check.RECALIBRATE.reference(*args)[5]
    assert fixed > 0.85 and fixed - stale > 0.3, (float(stale), float(fixed))
