"""bnbook.variants (batch renorm and ghost batch norm in torch) against bnlib's NumPy
functions, and bnbook.skipinit; both trained several-at-once (train_many) as one at a time."""

import copy
import functools

import numpy as np
import pytest
import torch

import bnlib
from bnbook import skipinit, train, variants
from tests.book.test_train import assert_train_many_equals_alone

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data():
    return train.load_digits_split()


def random_batch(seed, shape):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen, dtype=torch.float64) * 2 + 1
    dy = torch.randn(shape, generator=gen, dtype=torch.float64)
    return x, dy


@pytest.mark.parametrize("clip", [(1.0, 0.0), (1.5, 0.3), (3.0, 5.0)])
@pytest.mark.parametrize("shape", [(4, 3, 2, 2), (2, 5, 1, 1), (6, 2)])
def test_batch_renorm_equals_bnlib(clip, shape):
    x, dy = random_batch(0, shape)
    c = shape[1]
    weight = torch.linspace(0.5, 2, c, dtype=torch.float64, requires_grad=True)
    bias = torch.linspace(-1, 1, c, dtype=torch.float64, requires_grad=True)
    rm = torch.linspace(-1, 2, c, dtype=torch.float64)
    rv = torch.linspace(0.2, 5, c, dtype=torch.float64)
    rm_np, rv_np = rm.numpy().copy(), rv.numpy().copy()
    xt = x.clone().requires_grad_()
    y = variants.batch_renorm(xt, rm, rv, weight, bias, *clip, 0.1, 1e-5)
    y.backward(dy)
    w_np, b_np = weight.detach().numpy(), bias.detach().numpy()
    y_np, mean, invstd, r, d = bnlib.batch_renorm_forward(
        x.numpy(), rm_np, rv_np, w_np, b_np, *clip, 0.1, 1e-5
    )
    np.testing.assert_allclose(y.detach().numpy(), y_np, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(rm.numpy(), rm_np, rtol=1e-12)
    np.testing.assert_allclose(rv.numpy(), rv_np, rtol=1e-12)
    dx, dw, db = bnlib.batch_renorm_backward(dy.numpy(), x.numpy(), mean, invstd, r, d, w_np)
    np.testing.assert_allclose(xt.grad.numpy(), dx, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(weight.grad.numpy(), dw, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(bias.grad.numpy(), db, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(("shape", "ghost_size"), [((8, 3, 2, 2), 2), ((6, 2, 1, 1), 3)])
def test_ghost_batch_norm_equals_bnlib(shape, ghost_size):
    x, dy = random_batch(1, shape)
    c = shape[1]
    weight = torch.linspace(0.5, 2, c, dtype=torch.float64, requires_grad=True)
    bias = torch.linspace(-1, 1, c, dtype=torch.float64, requires_grad=True)
    rm, rv = torch.zeros(c, dtype=torch.float64), torch.ones(c, dtype=torch.float64)
    rm_np, rv_np = rm.numpy().copy(), rv.numpy().copy()
    xt = x.clone().requires_grad_()
    y = variants.ghost_batch_norm(xt, ghost_size, rm, rv, weight, bias, 0.1, 1e-5)
    y.backward(dy)
    w_np, b_np = weight.detach().numpy(), bias.detach().numpy()
    y_np, mean, invstd = bnlib.ghost_batch_norm_forward(
        x.numpy(), ghost_size, rm_np, rv_np, w_np, b_np, 0.1, 1e-5
    )
    np.testing.assert_allclose(y.detach().numpy(), y_np, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(rm.numpy(), rm_np, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(rv.numpy(), rv_np, rtol=1e-12)
    dx, dw, db = bnlib.ghost_batch_norm_backward(dy.numpy(), x.numpy(), mean, invstd, w_np)
    np.testing.assert_allclose(xt.grad.numpy(), dx, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(weight.grad.numpy(), dw, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(bias.grad.numpy(), db, rtol=1e-10, atol=1e-10)


def test_ghost_module_output_is_chapter_8s_per_device_batch_norm():
    """The same output as batch_noise.PerDeviceBatchNorm2d; the running statistics differ
    (every ghost batch, against device 0's slice alone)."""
    from bnbook import batch_noise

    x, _ = random_batch(2, (8, 3, 2, 2))
    x = x.float()
    ghost = variants.GhostBatchNorm2d(3, ghost_size=2)
    device = batch_noise.PerDeviceBatchNorm2d(3, devices=4)
    torch.testing.assert_close(ghost(x), device(x))
    assert not torch.allclose(ghost.running_mean, device.running_mean)


def test_renorm_schedule_and_eval_mode():
    layer = variants.BatchRenorm2d(2, r_max=3.0, d_max=5.0, warmup=2, ramp=4)
    clips = []
    for _ in range(8):
        clips.append(layer.clips())
        layer(torch.randn(4, 2, 2, 2))
    assert clips[:2] == [(1.0, 0.0)] * 2  # batch norm during the warm-up
    assert clips[2] == (1.5, 1.25) and clips[5:] == [(3.0, 5.0)] * 3
    layer.eval()
    x = torch.randn(3, 2, 2, 2)
    expected = torch.nn.functional.batch_norm(
        x, layer.running_mean, layer.running_var, layer.weight, layer.bias, False
    )
    torch.testing.assert_close(layer(x), expected)


def test_replace_batch_norm_keeps_parameters_and_buffers():
    model = train.make_resnet("batch", seed=0)
    model.train()(torch.randn(4, 1, 8, 8))
    renormed = variants.replace_batch_norm(
        model, functools.partial(variants.BatchRenorm2d, r_max=2.0)
    )
    old = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    new = [m for m in renormed.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(old) == len(new) and all(type(m) is variants.BatchRenorm2d for m in new)
    for a, b in zip(old, new, strict=True):
        torch.testing.assert_close(a.running_var, b.running_var)
        assert b.r_max == 2.0


def make_variant(kind, seed):
    model = train.make_resnet("batch", channels=(8, 16, 32), seed=seed)
    if kind == "renorm":
        make = functools.partial(variants.BatchRenorm2d, warmup=2, ramp=2)
        return variants.replace_batch_norm(model, make)
    if kind == "ghost":
        return variants.replace_batch_norm(
            model, functools.partial(variants.GhostBatchNorm2d, ghost_size=2)
        )
    return model


def test_train_many_equals_torch_sgd_one_model_at_a_time(data):
    """Renorm, ghost and plain batch norm copies side by side in one wide model train as
    each alone with torch.optim.SGD."""
    models = [make_variant(kind, s) for kind in ("renorm", "ghost", "batch") for s in (0, 1)]
    assert_train_many_equals_alone(models, data)


@pytest.mark.parametrize("variant", skipinit.VARIANTS)
def test_skipinit_networks_train_many_as_alone(data, variant):
    models = [skipinit.make_deep_resnet(variant, depth=3, width=4, seed=s) for s in (0, 1)]
    assert_train_many_equals_alone(models, data, steps=6, batch_size=8)


def test_skipinit_blocks_start_as_the_identity(data):
    x = data.x_train[:32]
    flat = skipinit.stream_variance(skipinit.make_deep_resnet("SkipInit", depth=6), x)
    assert len(flat) == 6 and np.allclose(flat, flat[0], rtol=1e-6)
    grows = skipinit.stream_variance(skipinit.make_deep_resnet("no norm", depth=6), x)
    assert grows[-1] > 4 * grows[0]
    model = skipinit.make_deep_resnet("batch norm", depth=6)
    before = copy.deepcopy(model.state_dict())
    skipinit.stream_variance(model, x)
    for key, value in model.state_dict().items():  # running statistics left alone
        torch.testing.assert_close(value, before[key])
    with pytest.raises(ValueError, match="variant must be one of"):
        skipinit.make_deep_resnet("layer norm")
