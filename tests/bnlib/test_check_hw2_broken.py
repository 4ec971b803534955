"""The second homework's checks: broken functions (stubs, wrong types, in-place writes,
wrong dtypes) get a report, never a crash of the checker."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from bnlib import check
from bnlib.check.homework_2 import folding, gn_forward
from tests.bnlib.hw2_students import (
    fold_ok,
    gn_ok,
    merge_no_delta,
    merge_ok,
)

# --------------------------------------------------------------------------------------
# Broken functions get a report, not a crash
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("checker", [check.group_norm, check.merge_stats, check.fold_bn])
def test_stubs_and_non_functions_are_reported(checker):
    def stub(*args):
        raise NotImplementedError

    result = checker(stub)
    assert not result and result.cases_passed == 0
    assert "Not implemented yet" in str(result)
    result = checker(None)
    assert not result and "expected your function" in str(result)


def test_a_fold_that_forgets_conv_b_may_be_none_is_told_where():
    def fold_no_none(conv_w, conv_b, running_mean, running_var, eps, gamma, beta):
        s = gamma / np.sqrt(running_var + eps)
        return conv_w * s.reshape(-1, 1, 1, 1), s * (conv_b - running_mean) + beta

    result = check.fold_bn(fold_no_none)
    report = str(result)
    assert result.cases_passed == sum(c.conv_bias for c in folding.FOLD_CASES)
    assert "raised TypeError: unsupported operand type(s) for -: 'NoneType'" in report
    assert "conv_b=None" in report


def test_modifying_the_weight_in_place_is_reported():
    def fold_in_place(conv_w, conv_b, running_mean, running_var, eps, gamma, beta):
        weight, bias = fold_ok(conv_w, conv_b, running_mean, running_var, eps, gamma, beta)
        conv_w *= 2
        return weight, bias

    result = check.fold_bn(fold_in_place)
    assert not result and "changed its input conv_w in place" in str(result)


def test_merge_count_is_an_int_and_must_be_right():
    def numpy_count(count_a, mean_a, m2_a, count_b, mean_b, m2_b):
        n, mean, m2 = merge_ok(count_a, mean_a, m2_a, count_b, mean_b, m2_b)
        return np.int64(n), mean, m2

    assert check.merge_stats(numpy_count)

    def float_count(count_a, mean_a, m2_a, count_b, mean_b, m2_b):
        n, mean, m2 = merge_ok(count_a, mean_a, m2_a, count_b, mean_b, m2_b)
        return float(n), mean, m2

    result = check.merge_stats(float_count)
    assert not result and "count has dtype float64 for a int64 input" in str(result)

    def per_channel_count(count_a, mean_a, m2_a, count_b, mean_b, m2_b):
        n, mean, m2 = merge_ok(count_a, mean_a, m2_a, count_b, mean_b, m2_b)
        return np.full(mean.shape, n), mean, m2

    assert "count has shape (" in str(check.merge_stats(per_channel_count))

    def bool_count(count_a, mean_a, m2_a, count_b, mean_b, m2_b):
        return True, *merge_ok(count_a, mean_a, m2_a, count_b, mean_b, m2_b)[1:]

    assert "count is a bool; expected a NumPy array" in str(check.merge_stats(bool_count))

    class Sneaky(int):  # an int that claims to equal anything
        def __eq__(self, other):
            return True

        __hash__ = int.__hash__

    def sneaky_count(count_a, mean_a, m2_a, count_b, mean_b, m2_b):
        return Sneaky(0), *merge_ok(count_a, mean_a, m2_a, count_b, mean_b, m2_b)[1:]

    assert "count is a Sneaky; expected a NumPy array" in str(check.merge_stats(sneaky_count))

    def off_by_one(count_a, mean_a, m2_a, count_b, mean_b, m2_b):
        n, mean, m2 = merge_ok(count_a, mean_a, m2_a, count_b, mean_b, m2_b)
        return n + 1, mean, m2

    result = check.merge_stats(off_by_one)  # counts are exact, however large
    assert result.cases_passed == 0 and "count is wrong" in str(result)

    def count_wrong(count_a, mean_a, m2_a, count_b, mean_b, m2_b):
        _, mean, m2 = merge_ok(count_a, mean_a, m2_a, count_b, mean_b, m2_b)
        return count_a, mean, m2

    result = check.merge_stats(count_wrong)
    assert not result and "count is wrong" in str(result)

    def two_values(count_a, mean_a, m2_a, count_b, mean_b, m2_b):
        return merge_ok(count_a, mean_a, m2_a, count_b, mean_b, m2_b)[1:]

    assert "returned 2 values; expected 3: count, mean, m2" in str(check.merge_stats(two_values))


def test_wrong_dtype_is_reported():
    def gn_float64(x, num_groups, gamma, beta, eps):
        return gn_ok(x.astype(np.float64), num_groups, gamma, beta, eps)

    result = check.group_norm(gn_float64)
    assert not result and "has dtype float64 for a float32 input" in str(result)
    assert result.cases_passed == sum(c.dtype == np.float64 for c in gn_forward.GROUP_NORM_CASES)


def test_unexplained_wrong_values_say_so():
    def gn_off(x, num_groups, gamma, beta, eps):
        return gn_ok(x, num_groups, gamma, beta, eps) * np.asarray(1.01, x.dtype)

    result = check.group_norm(gn_off)
    assert not result and not result.diagnoses
    assert "No classic mistake reproduces your output" in str(result)


def test_to_dict_is_json_ready():
    d = check.merge_stats(merge_no_delta).to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["check"] == "merge_stats" and d["diagnoses"][0]["mistake"] == "merge_no_delta_term"


def test_the_checks_need_numpy_only():
    """The student wheel is NumPy-only: the three checks run with torch, matplotlib,
    ipywidgets and IPython made unimportable."""
    code = textwrap.dedent(
        """
        import sys
        BLOCKED = {"torch", "matplotlib", "ipywidgets", "IPython", "scipy", "sklearn"}
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"{name} is blocked")
        sys.meta_path.insert(0, Block())
        import numpy as np
        import bnlib.check
        def fold(w, b, rm, rv, eps, g, be):
            s = g / np.sqrt(rv + eps)
            return w * s.reshape(-1, 1, 1, 1), s * ((0 if b is None else b) - rm) + be
        def merge(na, ma, qa, nb, mb, qb):
            n, d = na + nb, mb - ma
            return n, ma + d * nb / n, qa + qb + d * d * na * nb / n
        def gn(x, G, g, b, eps):
            r = x.reshape(x.shape[0], G, -1)
            y = ((r - r.mean(2, keepdims=True)) / np.sqrt(r.var(2, keepdims=True) + eps))
            return y.reshape(x.shape) * g.reshape(1, -1, 1, 1) + b.reshape(1, -1, 1, 1)
        for checker, fn in ((bnlib.check.fold_bn, fold), (bnlib.check.merge_stats, merge),
                            (bnlib.check.group_norm, gn)):
            assert checker(fn), str(checker(fn))
        print("ok", sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED))
        """
    )
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "ok []"
