"""bnbook.batch_noise: the between-image share, the spread of batch statistics, per-device
batch norm, and the batch-size sweep (against direct computations and torch)."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from bnbook import batch_noise, train

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data():
    return train.load_digits_split()


def test_gain_and_offset_is_an_affine_map_of_each_image(data):
    shifted = batch_noise.gain_and_offset(data, seed=3)
    again = batch_noise.gain_and_offset(data, seed=3)
    assert torch.equal(shifted.x_train, again.x_train)
    assert torch.equal(shifted.y_train, data.y_train) and torch.equal(shifted.y_test, data.y_test)
    for x, y in ((data.x_train[:20], shifted.x_train[:20]), (data.x_test[:5], shifted.x_test[:5])):
        for before, after in zip(x, y, strict=True):  # least squares: after = g·before + b
            a = np.stack([before.numpy().ravel(), np.ones(64)], axis=1)
            (g, b), *_ = np.linalg.lstsq(a, after.numpy().ravel(), rcond=None)
            np.testing.assert_allclose(a @ [g, b], after.numpy().ravel(), atol=1e-4)
            assert g > 0
    unchanged = batch_noise.gain_and_offset(data, gain_std=0, offset_std=0)
    assert torch.equal(unchanged.x_train, data.x_train)
    with pytest.raises(ValueError, match="gain_std"):
        batch_noise.gain_and_offset(data, gain_std=-1)


def test_between_image_share_against_its_definition():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 3, 4, 4)) + rng.standard_normal((50, 3, 1, 1))
    share = batch_noise.between_image_share(x)
    for c in range(3):  # Var of the 50 image means over the variance of all 800 values
        expected = x[:, c].mean(axis=(1, 2)).var() / x[:, c].var()
        assert share[c] == pytest.approx(expected, rel=1e-12)
    constant_images = np.repeat(rng.standard_normal((20, 2, 1, 1)), 9, axis=2).reshape(20, 2, 3, 3)
    np.testing.assert_allclose(batch_noise.between_image_share(constant_images), 1.0)
    independent = rng.standard_normal((4000, 1, 8, 8))
    assert batch_noise.between_image_share(independent)[0] == pytest.approx(1 / 64, rel=0.1)


def test_batch_spread_follows_the_between_image_share():
    """sd(batch mean) = σ·√(s/N) for images drawn at random (here within 10 %)."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3000, 2, 4, 4)) + 2 * rng.standard_normal((3000, 2, 1, 1))
    sizes = (1, 4, 16)
    mean_sd, var_sd = batch_noise.batch_spread(x, sizes, draws=2000)
    s = batch_noise.between_image_share(x).mean()
    np.testing.assert_allclose(mean_sd, np.sqrt(s / np.array(sizes)), rtol=0.1)
    # the variance's spread, against a direct simulation with NumPy's own draws
    flat = x.transpose(1, 0, 2, 3).reshape(2, -1)
    for n, got in zip(sizes, var_sd, strict=True):
        picks = [rng.choice(3000, n, replace=False) for _ in range(2000)]
        variances = np.array([x[p].transpose(1, 0, 2, 3).reshape(2, -1).var(axis=1) for p in picks])
        expected = np.sqrt(np.mean(variances.var(axis=0) / flat.var(axis=1) ** 2))
        assert got == pytest.approx(expected, rel=0.15), n
    with pytest.raises(ValueError, match="batch sizes"):
        batch_noise.batch_spread(x[:10], (20,))


def test_block_inputs_are_what_reaches_each_norm_in_eval_mode(data):
    model = train.make_cnn("batch", seed=0)
    train.train(model, data, 0.05, 5, 16, seed=0)
    model.train()
    inputs = batch_noise.block_inputs(model, data.x_test[:10])
    assert model.training  # the mode is restored
    with torch.no_grad():
        model.eval()
        expected = [model[:1](data.x_test[:10]), model[:5](data.x_test[:10]),
                    model[:8](data.x_test[:10])]  # fmt: skip
    assert len(inputs) == 3
    for got, want in zip(inputs, expected, strict=True):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("devices", [1, 2, 4])
def test_per_device_batch_norm_is_batch_norm_on_each_slice(devices):
    gen = torch.Generator().manual_seed(devices)
    x = (3 * torch.randn(8, 3, 4, 4, generator=gen) + 1).requires_grad_()
    layer = batch_noise.PerDeviceBatchNorm2d(3, devices)
    with torch.no_grad():
        layer.weight.uniform_(0.5, 2, generator=gen)
        layer.bias.uniform_(-1, 1, generator=gen)
    reference = nn.BatchNorm2d(3)
    reference.load_state_dict({k: v for k, v in layer.state_dict().items()})
    y = layer(x)
    dy = torch.randn(y.shape, generator=gen)
    (y * dy).sum().backward()
    x2 = x.detach().clone().requires_grad_()
    copies = [copy.deepcopy(reference) for _ in range(devices)]
    n = 8 // devices
    y2 = torch.cat([bn(x2[d * n : (d + 1) * n]) for d, bn in enumerate(copies)])
    (y2 * dy).sum().backward()
    torch.testing.assert_close(y, y2)
    torch.testing.assert_close(x.grad, x2.grad)
    # the buffers: device 0's slice, once per step
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(layer, name), getattr(copies[0], name))
    layer.eval()
    copies[0].eval()
    torch.testing.assert_close(layer(x), copies[0](x))


def test_per_device_errors_and_model_conversion():
    with pytest.raises(ValueError, match="devices"):
        batch_noise.PerDeviceBatchNorm2d(3, 0)
    with pytest.raises(ValueError, match="does not split"):
        batch_noise.PerDeviceBatchNorm2d(3, 4)(torch.randn(6, 3, 2, 2))
    model = train.make_resnet("batch", seed=0)
    model.train()(torch.randn(8, 1, 8, 8))  # non-trivial buffers
    converted = batch_noise.per_device(model, 4)
    layers = train.norm_layers(converted)
    assert layers and all(type(m) is batch_noise.PerDeviceBatchNorm2d for m in layers)
    assert all(m.devices == 4 for m in layers)
    for a, b in zip(model.state_dict().values(), converted.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    x = torch.randn(5, 1, 8, 8)
    torch.testing.assert_close(converted.eval()(x), model.eval()(x))


def test_per_device_models_train_wide_as_alone(data):
    """train_many widens per-device batch norm (models with different device counts at once)
    and gives each the updates torch.optim.SGD gives it alone."""
    models = [batch_noise.per_device(train.make_cnn("batch", seed=s), k)
              for s, k in ((0, 1), (1, 4))]  # fmt: skip
    alone = [copy.deepcopy(m) for m in models]
    train.train_many(models, data, [0.05, 0.05], 4, 8, [0, 1])
    for model, single, seed in zip(models, alone, (0, 1), strict=True):
        optimizer = torch.optim.SGD(single.parameters(), lr=0.05, momentum=train.MOMENTUM)
        for idx in train.batch_indices(data.x_train.shape[0], 8, 4, seed):
            loss = nn.functional.cross_entropy(single.train()(data.x_train[idx]), data.y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        for a, b in zip(model.state_dict().values(), single.state_dict().values(), strict=True):
            torch.testing.assert_close(a.float(), b.float(), atol=1e-5, rtol=1e-4)


def test_batch_size_sweep_chooses_the_lowest_final_loss(data):
    small = train.Digits(data.x_train[:128], data.y_train[:128], data.x_test, data.y_test, 0, 1)
    sweep = batch_noise.batch_size_sweep(
        train.make_mlp, small, ("batch", "layer"), (4, 16), (0.01, 0.1), (0, 1), samples=64
    )
    assert len(sweep.runs) == 2 * 2 * 2 * 2
    for norm in sweep.norms:
        for n in sweep.batch_sizes:
            history = sweep.runs[norm, n, 0.01, 0][0]
            assert history.steps == 64 // n and history.batch_size == n
            assert history.lr == pytest.approx(0.01 * n / 32)
            loss = {c: np.mean([sweep.runs[norm, n, c, s][0].final_loss(max(1, 64 // n // 10))
                                for s in sweep.seeds]) for c in sweep.c_grid}  # fmt: skip
            assert sweep.chosen[norm, n] == min(loss, key=loss.get)
        acc = sweep.accuracy(norm)
        assert acc.shape == (2, 2)
        assert acc[1, 0] == sweep.run(norm, 16, 0)[0].final_accuracy
