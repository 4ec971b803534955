"""bnlib.norms.group_norm and layer_norm against torch, on cases drawn by hypothesis; and
their errors on bad input."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import example, given
from hypothesis import strategies as st

from bnlib.norms import group_norm, layer_norm
from tests.cases import TOL, dtypes, epsilons, random_input


@st.composite
def grouped(draw):
    """(shape, num_groups): N ≤ 3, G ≤ 4 groups of ≤ 3 channels, up to 2 spatial sides ≤ 4,
    at least 2 values per group. (On a group of one value, x − μ is 0 and the output β;
    torch's float32 gives β plus its rounding of x − μ times 1/√ε.)"""
    groups = draw(st.integers(1, 4))
    c = groups * draw(st.integers(1, 3))
    n = draw(st.integers(1, 3))
    spatial = tuple(draw(st.lists(st.integers(1, 4), max_size=2)))
    if (c // groups) * int(np.prod(spatial, dtype=int)) < 2:
        spatial = (*spatial, 2)
    return (n, c, *spatial), groups


def affine(rng, shape, dtype, with_affine):
    if not with_affine:
        return None, None
    return (
        rng.uniform(0.5, 2, shape).astype(dtype),
        rng.uniform(-1, 1, shape).astype(dtype),
    )


def tensor(a):
    return None if a is None else torch.from_numpy(a)


@given(
    case=grouped(),
    dtype=dtypes,
    eps=epsilons,
    with_affine=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
@example(((1, 4, 3, 3), 2), np.float32, 1e-5, True, 1)  # one sample
@example(((3, 6, 1, 1), 3), np.float64, 1e-5, True, 2)  # 1×1 maps
@example(((2, 4, 2, 2), 4), np.float32, 1.0, True, 3)  # instance norm, large ε
@example(((2, 6, 5), 1), np.float64, 1e-3, False, 4)  # one group, 1-D maps
def test_group_norm_matches_torch(case, dtype, eps, with_affine, seed):
    shape, groups = case
    x = random_input(seed, shape, dtype)
    weight, bias = affine(np.random.default_rng(seed + 1), (shape[1],), dtype, with_affine)
    expected = F.group_norm(torch.from_numpy(x), groups, tensor(weight), tensor(bias), eps)
    got = group_norm(x, groups, weight, bias, eps)
    assert got.dtype == x.dtype and got.shape == x.shape
    np.testing.assert_allclose(got, expected.numpy(), **TOL[dtype])


@st.composite
def layered(draw):
    """(shape, normalized_shape): 2 to 4 dimensions, the last 1 to all of them normalized."""
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=2, max_size=4)))
    k = draw(st.integers(1, len(shape)))
    if int(np.prod(shape[len(shape) - k :])) < 2:
        shape = (*shape[:-1], shape[-1] + 1)
    return shape, shape[len(shape) - k :]


@given(
    case=layered(),
    dtype=dtypes,
    eps=epsilons,
    with_affine=st.booleans(),
    as_int=st.booleans(),  # an int for one trailing dimension, as nn.LayerNorm takes
    seed=st.integers(0, 2**32 - 1),
)
@example(((2, 3, 4, 4), (3, 4, 4)), np.float32, 1e-5, True, False, 1)  # a whole sample
@example(((5, 8), (8,)), np.float64, 1e-5, True, True, 2)  # a transformer's (tokens, features)
@example(((1, 2, 1, 1), (2, 1, 1)), np.float32, 1.0, True, False, 3)  # 1×1 maps, large ε
def test_layer_norm_matches_torch(case, dtype, eps, with_affine, as_int, seed):
    shape, normalized = case
    x = random_input(seed, shape, dtype)
    weight, bias = affine(np.random.default_rng(seed + 1), normalized, dtype, with_affine)
    expected = F.layer_norm(torch.from_numpy(x), normalized, tensor(weight), tensor(bias), eps)
    as_int = as_int and len(normalized) == 1
    got = layer_norm(x, normalized[0] if as_int else normalized, weight, bias, eps)
    assert got.dtype == x.dtype and got.shape == x.shape
    np.testing.assert_allclose(got, expected.numpy(), **TOL[dtype])


def test_special_cases_are_layer_and_instance_norm():
    """One group is layer norm over (C, H, W); C groups is torch's instance norm."""
    x = random_input(0, (3, 4, 5, 5), np.float64)
    np.testing.assert_allclose(
        group_norm(x, 1), F.layer_norm(torch.from_numpy(x), (4, 5, 5)).numpy(), **TOL[np.float64]
    )
    np.testing.assert_allclose(
        group_norm(x, 4), F.instance_norm(torch.from_numpy(x)).numpy(), **TOL[np.float64]
    )


def test_groups_are_contiguous_channels():
    """Channels 0-1 form group 0: shifting channel 2 by a constant leaves them unchanged."""
    x = random_input(1, (2, 4, 3, 3), np.float64)
    shifted = x.copy()
    shifted[:, 2] += 100.0
    np.testing.assert_array_equal(group_norm(x, 2)[:, :2], group_norm(shifted, 2)[:, :2])
    assert not np.allclose(group_norm(x, 2)[:, 2:], group_norm(shifted, 2)[:, 2:])


def test_inputs_are_not_modified():
    x = random_input(2, (2, 4, 3), np.float32)
    w, b = np.ones(4, np.float32), np.zeros(4, np.float32)
    before = x.copy(), w.copy(), b.copy()
    group_norm(x, 2, w, b)
    layer_norm(x, (4, 3))
    for a, a0 in zip((x, w, b), before, strict=True):
        np.testing.assert_array_equal(a, a0)


X = np.zeros((2, 6, 3, 3), np.float32)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: group_norm(X, 4), ValueError, r"positive divisor of .* C = 6.*1, 2, 3, 6"),
        (lambda: group_norm(X, 0), ValueError, "positive divisor"),
        (lambda: group_norm(X, 2.0), TypeError, "num_groups must be an int"),
        (lambda: group_norm(X, True), TypeError, "num_groups must be an int"),
        (lambda: group_norm(np.zeros(6, np.float32), 2), ValueError, "at least 2 dimensions"),
        (lambda: group_norm(X.astype(int), 2), TypeError, "float32 or float64"),
        (lambda: group_norm(X, 2, np.ones(5)), ValueError, r"weight must have shape \(6,\)"),
        (lambda: group_norm(X, 2, None, np.ones((6, 1))), ValueError, "bias must have shape"),
        (lambda: group_norm(X, 2, eps=0.0), ValueError, "eps must be a positive"),
        (lambda: group_norm(X, 2, eps="1e-5"), TypeError, "eps must be a positive number"),
        (lambda: layer_norm(X, (4,)), ValueError, r"trailing dimensions .* \(\*, 4\)"),
        (lambda: layer_norm(X, (2, 6, 3, 3, 1)), ValueError, "trailing dimensions"),
        (lambda: layer_norm(X, ()), ValueError, "at least one dimension"),
        (lambda: layer_norm(X, "CHW"), TypeError, "int or a sequence of ints"),
        (lambda: layer_norm(X, 3, np.ones(4)), ValueError, r"weight must have shape \(3,\)"),
        (lambda: layer_norm(X, 3, eps=-1.0), ValueError, "eps must be a positive"),
        (lambda: layer_norm(X.astype(np.float16), 3), TypeError, "dtype float16"),
    ],
)
def test_bad_input_gets_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()
