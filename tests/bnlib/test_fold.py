"""bnlib.fold_conv_bn against torch's fuser and against running conv + BN in eval mode."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import example, given
from hypothesis import strategies as st
from torch.nn.utils.fusion import fuse_conv_bn_weights

import bnlib
from tests.cases import TOL, dtypes, epsilons


def _case(seed, weight_shape, dtype, with_bias, affine):
    """Random layer weights and BN state; running variances from 0.05 to 4."""
    rng = np.random.default_rng(seed)
    c = weight_shape[0]
    w = rng.standard_normal(weight_shape).astype(dtype)
    b = rng.standard_normal(c).astype(dtype) if with_bias else None
    rm = rng.standard_normal(c).astype(dtype)
    rv = rng.uniform(0.05, 4, c).astype(dtype)
    gamma = rng.uniform(-2, 2, c).astype(dtype) if affine else None
    beta = rng.standard_normal(c).astype(dtype) if affine else None
    return w, b, rm, rv, gamma, beta


def _torch(a):
    return None if a is None else torch.from_numpy(a)


weight_shapes = st.one_of(
    st.tuples(st.integers(1, 6), st.integers(1, 5)),  # linear (out, in)
    st.tuples(st.integers(1, 6), st.integers(1, 4), st.integers(1, 4)),  # conv1d
    st.tuples(st.integers(1, 6), st.integers(1, 4), st.integers(1, 3), st.integers(1, 3)),
    st.tuples(*[st.integers(1, 3)] * 5),  # conv3d
)


@given(
    weight_shape=weight_shapes,
    dtype=dtypes,
    eps=epsilons,
    with_bias=st.booleans(),
    affine=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
@example((1, 1), np.float32, 1e-5, False, False, 0)  # one channel, no bias, affine=False
@example((4, 3, 3, 3), np.float64, 1e-5, True, True, 1)
def test_matches_torch_fuser(weight_shape, dtype, eps, with_bias, affine, seed):
    w, b, rm, rv, gamma, beta = _case(seed, weight_shape, dtype, with_bias, affine)
    args = (w, b, rm, rv, eps, gamma, beta)
    expected_w, expected_b = fuse_conv_bn_weights(
        *[_torch(a) if k != 4 else a for k, a in enumerate(args)]
    )
    got_w, got_b = bnlib.fold_conv_bn(*args)

    assert isinstance(got_w, np.ndarray) and isinstance(got_b, np.ndarray)
    assert got_w.dtype == w.dtype and got_w.shape == w.shape
    assert got_b.dtype == w.dtype and got_b.shape == (weight_shape[0],)
    np.testing.assert_allclose(got_w, expected_w.detach().numpy(), **TOL[dtype])
    np.testing.assert_allclose(got_b, expected_b.detach().numpy(), **TOL[dtype])


@given(
    kind=st.sampled_from(["linear", "conv1d", "conv2d", "conv2d-groups"]),
    dtype=dtypes,
    with_bias=st.booleans(),
    affine=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
@example("conv2d", np.float32, False, True, 0)
def test_folded_layer_equals_layer_then_eval_bn(kind, dtype, with_bias, affine, seed):
    """The folded layer's output equals torch's layer followed by BN in eval mode."""
    torch.manual_seed(seed % 2**31)
    tdtype = torch.float32 if dtype == np.float32 else torch.float64
    c_in, c_out = 4, 6
    if kind == "linear":
        layer, bn = torch.nn.Linear(c_in, c_out, bias=with_bias), torch.nn.BatchNorm1d
        x = torch.randn(8, c_in, dtype=tdtype)
    elif kind == "conv1d":
        layer, bn = torch.nn.Conv1d(c_in, c_out, 3, bias=with_bias), torch.nn.BatchNorm1d
        x = torch.randn(8, c_in, 9, dtype=tdtype)
    else:
        groups = 2 if kind == "conv2d-groups" else 1
        layer = torch.nn.Conv2d(c_in, c_out, 3, padding=1, groups=groups, bias=with_bias)
        bn = torch.nn.BatchNorm2d
        x = torch.randn(8, c_in, 5, 5, dtype=tdtype)
    layer = layer.to(tdtype)
    norm = bn(c_out, affine=affine).to(tdtype)
    with torch.no_grad():  # running statistics from two training batches, then γ, β moved
        norm.train()
        for _ in range(2):
            norm(layer(x * 2 + 1))
        if affine:
            norm.weight.uniform_(-2, 2)
            norm.bias.normal_()
    layer.eval()
    norm.eval()
    with torch.no_grad():
        expected = norm(layer(x)).numpy()

    def np_or_none(p):
        return None if p is None else p.detach().numpy()

    w, b = bnlib.fold_conv_bn(
        np_or_none(layer.weight),
        np_or_none(layer.bias),
        norm.running_mean.numpy(),
        norm.running_var.numpy(),
        norm.eps,
        np_or_none(norm.weight),
        np_or_none(norm.bias),
    )
    tw, tb = torch.from_numpy(w), torch.from_numpy(b)
    with torch.no_grad():
        if kind == "linear":
            got = F.linear(x, tw, tb)
        elif kind == "conv1d":
            got = F.conv1d(x, tw, tb)
        else:
            got = F.conv2d(x, tw, tb, padding=1, groups=layer.groups)
    np.testing.assert_allclose(
        got.numpy(),
        expected,
        rtol=1e-4 if dtype == np.float32 else 1e-10,
        atol=1e-4 if dtype == np.float32 else 1e-10,
    )


def test_inputs_not_modified_and_bias_dtype_follows_conv_bias():
    w, b, rm, rv, gamma, beta = _case(0, (3, 2, 3, 3), np.float32, True, True)
    b64 = b.astype(np.float64)
    copies = [a.copy() for a in (w, b64, rm, rv, gamma, beta)]
    folded_w, folded_b = bnlib.fold_conv_bn(w, b64, rm, rv, 1e-5, gamma, beta)
    for before, after in zip(copies, (w, b64, rm, rv, gamma, beta), strict=True):
        np.testing.assert_array_equal(before, after)
    assert folded_w.dtype == np.float32 and folded_b.dtype == np.float64
    _, expected_b = fuse_conv_bn_weights(
        *[_torch(a) if not isinstance(a, float) else a for a in (w, b64, rm, rv, 1e-5, gamma, beta)]
    )
    assert expected_b.dtype == torch.float64  # torch keeps the bias's dtype too


def _good():
    w, b, rm, rv, gamma, beta = _case(0, (3, 2, 3, 3), np.float32, True, True)
    return dict(conv_w=w, conv_b=b, bn_rm=rm, bn_rv=rv, bn_eps=1e-5, bn_w=gamma, bn_b=beta)


@pytest.mark.parametrize(
    "change, error, match",
    [
        (dict(bn_rm=np.zeros(4, np.float32)), ValueError, r"bn_rm must have shape \(3,\)"),
        (dict(bn_rv=np.ones(2, np.float32)), ValueError, r"bn_rv must have shape \(3,\)"),
        (dict(conv_b=np.zeros(5, np.float32)), ValueError, r"conv_b must have shape \(3,\)"),
        (dict(bn_w=np.ones((3, 1), np.float32)), ValueError, r"bn_w must have shape \(3,\)"),
        (dict(bn_b=np.zeros(1, np.float32)), ValueError, r"bn_b must have shape \(3,\)"),
        (dict(bn_rv=np.array([1, -0.5, 1], np.float32)), ValueError, r"channel\(s\) \[1\]"),
        (dict(bn_rv=np.array([1, np.nan, 1], np.float32)), ValueError, r"must be >= 0"),
        (dict(bn_rv=np.zeros(3, np.float32), bn_eps=0.0), ValueError, "is infinite"),
        (dict(bn_eps=-1e-5), ValueError, "bn_eps must be a finite number >= 0"),
        (dict(bn_eps=float("nan")), ValueError, "bn_eps must be a finite number >= 0"),
        (dict(bn_eps="1e-5"), TypeError, "bn_eps must be a number"),
        (dict(bn_eps=True), TypeError, "bn_eps must be a number"),
        (dict(bn_rm=None), ValueError, "are required"),
        (dict(conv_w=np.ones(3, np.float32)), ValueError, "at least 2 dimensions"),
        (dict(conv_w=np.ones((3, 2), np.int64)), TypeError, "conv_w must be a float32 or"),
        (dict(bn_rv=np.ones(3, np.float16)), TypeError, "bn_rv must be a float32 or"),
        (dict(bn_w=np.ones(3, bool)), TypeError, "bn_w must be a float32 or"),
    ],
)
def test_bad_input_gets_a_clear_error(change, error, match):
    with pytest.raises(error, match=match):
        bnlib.fold_conv_bn(**{**_good(), **change})


def test_mismatched_channels_torch_fails_too():
    """torch's fuser also refuses a BN of the wrong width (with a broadcasting error)."""
    args = _good()
    args["bn_rm"] = np.zeros(4, np.float32)
    with pytest.raises(RuntimeError):
        fuse_conv_bn_weights(
            *[_torch(a) if isinstance(a, np.ndarray) else a for a in args.values()]
        )
