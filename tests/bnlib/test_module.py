"""bnlib.BatchNorm2d against torch.nn.BatchNorm2d over train/eval sequences of several steps."""

import numpy as np
import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

import bnlib
from tests.cases import GRAD_TOL, TOL, random_input

settings_strategy = st.fixed_dictionaries(
    {
        "eps": st.sampled_from([1e-5, 1e-3, 0.5]),
        "momentum": st.sampled_from([0.1, 0.0, 1.0, None, 0.3]),
        "affine": st.booleans(),
        "track_running_stats": st.booleans(),
    }
)


@st.composite
def steps(draw):
    """A sequence of (mode, N, H, W) steps; training steps have N·H·W > 1."""
    sequence = []
    for _ in range(draw(st.integers(1, 5))):
        training = draw(st.booleans())
        n, h, w = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
        if n * h * w == 1:
            n = 2
        sequence.append((training, n, h, w))
    return sequence


@given(
    c=st.integers(1, 3),
    settings=settings_strategy,
    sequence=steps(),
    dtype=st.sampled_from([np.float32, np.float64]),
    seed=st.integers(0, 2**32 - 1),
)
@example(  # one image, one channel, 1×1 maps; then evaluation on a single value per channel
    c=1,
    settings={"eps": 1e-5, "momentum": None, "affine": True, "track_running_stats": True},
    sequence=[(True, 1, 3, 2), (True, 6, 1, 1), (False, 1, 1, 1), (True, 2, 2, 2)],
    dtype=np.float32,
    seed=5,
)
def test_sequence_matches_torch(c, settings, sequence, dtype, seed):
    rng = np.random.default_rng(seed)
    torch_bn = torch.nn.BatchNorm2d(c, **settings)
    if dtype == np.float64:
        torch_bn = torch_bn.double()
    if settings["affine"]:
        with torch.no_grad():
            torch_bn.weight.uniform_(0.5, 2.0, generator=torch.Generator().manual_seed(seed))
            torch_bn.bias.uniform_(-1.0, 1.0, generator=torch.Generator().manual_seed(seed + 1))
    bn = bnlib.BatchNorm2d.from_torch(torch_bn)

    for step, (training, n, h, w) in enumerate(sequence):
        torch_bn.train(training)
        bn.train(training)
        x = random_input(seed + step, (n, c, h, w), dtype)
        dy = rng.standard_normal(x.shape).astype(dtype)
        tx = torch.tensor(x, requires_grad=True)
        out = torch_bn(tx)
        out.backward(torch.tensor(dy))
        y = bn(x)
        dx = bn.backward(dy)

        assert y.dtype == x.dtype
        np.testing.assert_allclose(y, out.detach().numpy(), **TOL[dtype])
        scale = max(1.0, float(np.abs(tx.grad.numpy()).max()))
        np.testing.assert_allclose(dx / scale, tx.grad.numpy() / scale, **GRAD_TOL[dtype])
        if settings["affine"]:
            np.testing.assert_allclose(
                bn.grad_weight, torch_bn.weight.grad.numpy(), **GRAD_TOL[dtype]
            )
            np.testing.assert_allclose(bn.grad_bias, torch_bn.bias.grad.numpy(), **GRAD_TOL[dtype])
            torch_bn.weight.grad = torch_bn.bias.grad = None
        state, torch_state = bn.state_dict(), torch_bn.state_dict()
        assert list(state) == list(torch_state)
        for key, value in torch_state.items():
            np.testing.assert_allclose(state[key], value.numpy(), **TOL[dtype], err_msg=key)


def test_state_dict_round_trip_and_torch_keys():
    torch_bn = torch.nn.BatchNorm2d(3)
    torch_bn(torch.randn(4, 3, 2, 2, generator=torch.Generator().manual_seed(0)))
    bn = bnlib.BatchNorm2d(3)
    bn.load_state_dict(torch_bn.state_dict())  # torch tensors load directly
    assert bn.num_batches_tracked == 1
    np.testing.assert_array_equal(bn.running_var, torch_bn.running_var.numpy())
    again = bnlib.BatchNorm2d(3)
    again.load_state_dict(bn.state_dict())
    for key, value in bn.state_dict().items():
        np.testing.assert_array_equal(again.state_dict()[key], value)
    # and back into torch
    fresh = torch.nn.BatchNorm2d(3)
    fresh.load_state_dict({k: torch.as_tensor(v) for k, v in bn.state_dict().items()})
    assert torch.equal(fresh.running_mean, torch_bn.running_mean)


def test_state_dict_keys_follow_settings():
    assert list(bnlib.BatchNorm2d(2, affine=False).state_dict()) == [
        "running_mean",
        "running_var",
        "num_batches_tracked",
    ]
    assert list(bnlib.BatchNorm2d(2, track_running_stats=False).state_dict()) == ["weight", "bias"]


def test_defaults_match_torch():
    bn, torch_bn = bnlib.BatchNorm2d(4), torch.nn.BatchNorm2d(4)
    assert (bn.eps, bn.momentum, bn.affine, bn.track_running_stats, bn.training) == (
        torch_bn.eps,
        torch_bn.momentum,
        torch_bn.affine,
        torch_bn.track_running_stats,
        torch_bn.training,
    )
    for key, value in torch_bn.state_dict().items():
        np.testing.assert_array_equal(bn.state_dict()[key], value.numpy())
    assert bnlib.BatchNorm2d(4, affine=False).weight is None
    assert bn.eval() is bn and not bn.training


def test_momentum_none_is_cumulative_average():
    bn = bnlib.BatchNorm2d(2, momentum=None)
    batches = [random_input(s, (3, 2, 2, 2), np.float64) for s in range(5)]
    for x in batches:
        bn(x)
    means = [x.mean(axis=(0, 2, 3)) for x in batches]
    variances = [x.var(axis=(0, 2, 3), ddof=1) for x in batches]
    np.testing.assert_allclose(bn.running_mean, np.mean(means, axis=0), rtol=1e-6)
    np.testing.assert_allclose(bn.running_var, np.mean(variances, axis=0), rtol=1e-6)
    assert bn.num_batches_tracked == 5


def test_eval_without_tracking_uses_batch_statistics():
    x = random_input(0, (4, 2, 3, 3), np.float32)
    bn = bnlib.BatchNorm2d(2, track_running_stats=False).eval()
    np.testing.assert_allclose(bn(x), bnlib.batch_norm(x, training=True), rtol=1e-6, atol=1e-6)


def test_eval_backward_treats_running_statistics_as_constants():
    x = random_input(1, (2, 2, 3, 3), np.float64)
    bn = bnlib.BatchNorm2d(2).eval()
    bn.running_var[...] = [4.0, 0.25]
    bn(x)
    dy = np.ones_like(x)
    np.testing.assert_allclose(bn.backward(dy)[:, 0], 1 / np.sqrt(4.0 + 1e-5), rtol=1e-6)
    np.testing.assert_allclose(bn.backward(dy)[:, 1], 1 / np.sqrt(0.25 + 1e-5), rtol=1e-6)


# -- bad input: clear errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "error", "words"),
    [
        (lambda: bnlib.BatchNorm2d(0), ValueError, "num_features must be at least 1"),
        (lambda: bnlib.BatchNorm2d(2.5), TypeError, "num_features must be an int"),
        (lambda: bnlib.BatchNorm2d(2, eps=0), ValueError, "eps must be a positive"),
        (lambda: bnlib.BatchNorm2d(2, eps=-1e-5), ValueError, "eps must be a positive"),
        (lambda: bnlib.BatchNorm2d(2, momentum=1.5), ValueError, r"momentum must be in \[0, 1\]"),
        (lambda: bnlib.BatchNorm2d(2, momentum=-0.1), ValueError, r"momentum must be in \[0, 1\]"),
        (lambda: bnlib.BatchNorm2d(2, momentum="0.1"), TypeError, "momentum must be"),
    ],
)
def test_bad_settings(make, error, words):
    with pytest.raises(error, match=words):
        make()


def test_bad_inputs_to_the_module():
    bn = bnlib.BatchNorm2d(2)
    with pytest.raises(ValueError, match=r"expected 4D input \(N, C, H, W\) \(got 3D input\)"):
        bn(np.zeros((2, 2, 3), np.float32))
    with pytest.raises(ValueError, match="expected input with 2 channels"):
        bn(np.zeros((2, 3, 2, 2), np.float32))
    with pytest.raises(TypeError, match="float32 or float64, got dtype int64"):
        bn(np.zeros((2, 2, 2, 2), np.int64))
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        bn(np.zeros((1, 2, 1, 1), np.float32))
    with pytest.raises(RuntimeError, match="backward.. called before forward"):
        bnlib.BatchNorm2d(2).backward(np.zeros((2, 2, 2, 2), np.float32))
    bn(np.ones((2, 2, 2, 2), np.float32))
    with pytest.raises(ValueError, match="dy must have the shape"):
        bn.backward(np.zeros((2, 2, 3, 3), np.float32))
    # evaluation with running statistics accepts a single value per channel, as torch does
    assert bn.eval()(np.zeros((1, 2, 1, 1), np.float32)).shape == (1, 2, 1, 1)


def test_bad_state_dicts():
    bn = bnlib.BatchNorm2d(2)
    good = bn.state_dict()
    with pytest.raises(ValueError, match=r"size mismatch for running_var.*\(3,\)"):
        bn.load_state_dict({**good, "running_var": np.ones(3, np.float32)})
    with pytest.raises(KeyError, match=r"missing keys \['bias'\]"):
        bn.load_state_dict({k: v for k, v in good.items() if k != "bias"})
    with pytest.raises(KeyError, match=r"unexpected keys \['extra'\]"):
        bn.load_state_dict({**good, "extra": np.ones(2)})
    with pytest.raises(ValueError, match="num_batches_tracked must be an integer scalar"):
        bn.load_state_dict({**good, "num_batches_tracked": np.ones(2)})
    np.testing.assert_array_equal(bn.running_var, good["running_var"])  # nothing half-loaded


def test_forward_keeps_input_mean_and_invstd_like_native_batch_norm():
    """What backward() takes: the input, and the μ and 1/√(σ² + ε) that normalized it."""
    x = random_input(2, (4, 3, 2, 3), np.float64)
    bn = bnlib.BatchNorm2d(3)
    bn(x)
    _, mean, invstd = torch.native_batch_norm(
        torch.tensor(x), None, None, None, None, True, 0.1, bn.eps
    )
    assert bn._saved_x is x and bn._saved_batch_stats
    np.testing.assert_allclose(bn._saved_mean, mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(bn._saved_invstd, invstd.numpy(), rtol=1e-12)

    bn.eval()
    bn(x)
    assert not bn._saved_batch_stats
    np.testing.assert_allclose(bn._saved_mean, bn.running_mean, rtol=1e-7)
    np.testing.assert_allclose(bn._saved_invstd, 1 / np.sqrt(bn.running_var + bn.eps), rtol=1e-7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_module_backward_is_the_functions_backward(dtype):
    """One backward: the module's gradients are the standalone functions' to the last bit."""
    rng = np.random.default_rng(3)
    x = random_input(3, (2, 3, 4, 4), dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    bn = bnlib.BatchNorm2d(3)
    bn.weight = rng.uniform(0.5, 2, 3).astype(np.float32)
    bn(x)
    dx = bn.backward(dy)
    expected = bnlib.batch_norm_backward(dy, x, bn.weight, bn.eps)
    np.testing.assert_array_equal(dx, expected[0])
    np.testing.assert_array_equal(bn.grad_weight, expected[1].astype(np.float32))
    bn.eval()
    bn(x)
    dx = bn.backward(dy)
    expected = bnlib.batch_norm_eval_backward(
        dy, x, bn.running_mean, bn.running_var, bn.weight, bn.eps
    )
    np.testing.assert_array_equal(dx, expected[0])
    np.testing.assert_array_equal(bn.grad_bias, expected[2].astype(np.float32))
