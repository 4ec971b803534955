"""bnbook.train: the digits split, the networks, and training (against torch.optim.SGD)."""

import copy
import functools

import numpy as np
import pytest
import torch
from torch import nn

from bnbook import train

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data():
    return train.load_digits_split()


# --------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------


def test_split_is_fixed_stratified_and_disjoint(data):
    from sklearn.datasets import load_digits

    assert data.x_train.shape == (1347, 1, 8, 8) and data.x_test.shape == (450, 1, 8, 8)
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
    again = train.load_digits_split()
    assert torch.equal(again.x_train, data.x_train) and torch.equal(again.y_test, data.y_test)
    other = train.load_digits_split(seed=1)
    assert not torch.equal(other.y_test, data.y_test)
    # stratified: each digit's count in the test set is within one of its exact share
    all_counts = np.bincount(load_digits().target)
    test_counts = np.bincount(data.y_test.numpy())
    assert np.all(np.abs(test_counts - 0.25 * all_counts) <= 1)
    # disjoint, and together every image once
    raw = load_digits().images.reshape(1797, -1)
    restored = torch.cat([data.x_train, data.x_test]).reshape(1797, -1).numpy()
    restored = restored * data.pixel_std + data.pixel_mean
    key = lambda rows: sorted(map(tuple, np.round(rows).astype(int)))  # noqa: E731
    assert key(restored) == key(raw)
    # standardized with the training set's statistics
    assert abs(float(data.x_train.mean())) < 1e-4 and abs(float(data.x_train.std()) - 1) < 1e-3


def test_bad_split_fraction_raises():
    with pytest.raises(ValueError, match="test_fraction"):
        train.load_digits_split(test_fraction=1.5)


def test_batch_indices_are_epochs_of_permutations():
    idx = train.batch_indices(10, 3, steps=7, seed=0)
    assert idx.shape == (7, 3)
    # 3 full batches per epoch (the 10th image is dropped each epoch), each epoch distinct
    for epoch in range(2):
        chunk = idx[3 * epoch : 3 * epoch + 3].flatten()
        assert len(set(chunk.tolist())) == 9
    assert torch.equal(idx, train.batch_indices(10, 3, steps=7, seed=0))
    assert not torch.equal(idx, train.batch_indices(10, 3, steps=7, seed=1))
    with pytest.raises(ValueError, match="batch_size"):
        train.batch_indices(10, 11, steps=1, seed=0)


# --------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------

NORM_TYPES = {
    "batch": nn.BatchNorm2d,
    "group": nn.GroupNorm,
    "layer": nn.GroupNorm,
}


@pytest.mark.parametrize("norm", train.NORMS)
def test_cnn_layers_shapes_and_biases(norm):
    model = train.make_cnn(norm, seed=0)
    x = torch.zeros(5, 1, 8, 8)
    assert model(x).shape == (5, 10)
    convs = [m for m in model if isinstance(m, nn.Conv2d)]
    assert len(convs) == 3
    norms = train.norm_layers(model)
    if norm == "none":
        assert norms == [] and all(c.bias is not None for c in convs)
        return
    # one norm right after each convolution, then a ReLU; no conv bias before a norm
    assert all(c.bias is None for c in convs)
    for i, layer in enumerate(model):
        if isinstance(layer, nn.Conv2d):
            assert isinstance(model[i + 1], NORM_TYPES[norm])
            assert isinstance(model[i + 2], nn.ReLU)
    assert [n.num_features if norm == "batch" else n.num_channels for n in norms] == [8, 16, 16]
    if norm == "group":
        assert [n.num_groups for n in norms] == [2, 4, 4]
    if norm == "layer":
        assert [n.num_groups for n in norms] == [1, 1, 1]


def test_layer_norm_cnn_matches_torch_layernorm_over_chw():
    """GroupNorm(1, C) normalizes each image over C·H·W, as LayerNorm([C, H, W]) does."""
    x = torch.randn(3, 8, 4, 4, generator=torch.Generator().manual_seed(0))
    ours = train.norm_layer("layer", 8)(x)
    reference = nn.LayerNorm([8, 4, 4], elementwise_affine=False)(x)
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("norm", ["batch", "layer", "none"])
def test_mlp_layers(norm):
    model = train.make_mlp(norm, seed=0)
    assert model(torch.zeros(4, 1, 8, 8)).shape == (4, 10)
    kinds = {"batch": nn.BatchNorm1d, "layer": nn.LayerNorm}
    norms = train.norm_layers(model)
    if norm == "none":
        assert norms == []
    else:
        assert [type(n) for n in norms] == [kinds[norm]] * 2
        linears = [m for m in model if isinstance(m, nn.Linear)]
        assert [m.bias is None for m in linears] == [True, True, False]


@pytest.mark.parametrize("channels, last_map", [((8, 16, 32), 2), ((8, 16, 32, 64), 1)])
def test_resnet_maps_halve_at_every_stage(channels, last_map):
    model = train.make_resnet("batch", channels=channels, seed=0)
    shapes = []
    hooks = [
        m.register_forward_hook(lambda mod, i, o: shapes.append(tuple(o.shape[1:])))
        for m in model
        if isinstance(m, train.Residual)
    ]
    assert model(torch.zeros(3, 1, 8, 8)).shape == (3, 10)
    for h in hooks:
        h.remove()
    sizes = [8 // 2**k for k in range(1, len(channels))]
    assert shapes == [(c, n, n) for c, n in zip(channels[1:], sizes, strict=True)]
    assert shapes[-1][1] == last_map
    # a norm after every convolution, no conv bias before it; x + body(x) in the blocks
    assert all(c.bias is None for c in model.modules() if isinstance(c, nn.Conv2d))
    block = next(m for m in model if isinstance(m, train.Residual))
    x = torch.randn(2, channels[1], 4, 4)
    torch.testing.assert_close(block.eval()(x), x + block.body(x))


def test_models_are_seeded_and_scaled():
    a, b = train.make_cnn("batch", seed=3), train.make_cnn("batch", seed=3)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    c = train.make_cnn("batch", seed=4)
    assert not torch.equal(a[0].weight, c[0].weight)
    scaled = train.make_cnn("batch", init_scale=10.0, seed=3)
    torch.testing.assert_close(scaled[0].weight, 10 * a[0].weight)
    torch.testing.assert_close(scaled[5].weight, a[5].weight)  # BN's γ is not scaled


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="norm must be one of"):
        train.make_cnn("batchnorm")
    with pytest.raises(ValueError, match="init_scale"):
        train.make_cnn("batch", init_scale=0.0)
    with pytest.raises(ValueError, match="divisible"):
        train.make_cnn("group", channels=(6, 16, 16))


# --------------------------------------------------------------------------------------
# Stacking and training
# --------------------------------------------------------------------------------------


def sgd_alone(model, data, lr, steps, batch_size, seed):
    """The reference: torch.optim.SGD on one model, batches from batch_indices."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=train.MOMENTUM)
    model.train()
    losses = []
    for idx in train.batch_indices(data.x_train.shape[0], batch_size, steps, seed):
        loss = nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return np.array(losses)


def assert_same_state(a, b, atol=1e-5):
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(x.float(), y.float(), atol=atol, rtol=1e-4, msg=name)


@pytest.mark.parametrize(
    "make, norms",
    [
        (train.make_cnn, ["batch", "group", "layer"]),
        (train.make_mlp, ["batch", "layer"]),
        # the 1×1 stage at batch size 4 amplifies float rounding: test the 2×2 network
        (functools.partial(train.make_resnet, channels=(8, 16, 32)), ["batch", "group"]),
    ],
)
def test_train_many_equals_torch_sgd_one_model_at_a_time(data, make, norms):
    assert_train_many_equals_alone([make(norm, seed=s) for norm in norms for s in (0, 1)], data)


def assert_train_many_equals_alone(models, data, steps=8, batch_size=4):
    """MODELS trained side by side in one wide model (train.train_many, a learning rate and
    seed each) end with the losses and state of each trained alone with torch.optim.SGD."""
    lrs = [0.01 * (i + 1) for i in range(len(models))]
    seeds = list(range(len(models)))
    alone = [copy.deepcopy(m) for m in models]
    histories = train.train_many(models, data, lrs, steps, batch_size, seeds)
    for model, single, lr, seed, history in zip(models, alone, lrs, seeds, histories, strict=True):
        losses = sgd_alone(single, data, lr, steps, batch_size, seed)
        np.testing.assert_allclose(history.train_loss, losses, rtol=1e-5, atol=1e-5)
        assert_same_state(model, single)


def test_stack_unstack_round_trip_and_wide_forward(data):
    models = [train.make_cnn("batch", seed=s) for s in range(3)]
    for m in models:  # non-trivial buffers
        m.train()(data.x_train[:16])
    wide = train.stack(models)
    for k, m in enumerate(models):
        assert_same_state(train.unstack(wide, k, m), m, atol=0)
    wide.eval()
    x = data.x_test[:6]
    inputs = torch.cat([x] * 3, dim=1)  # (6, 3, 8, 8): each copy gets the same images
    out = wide(inputs).view(6, 3, 10)
    for k, m in enumerate(models):
        torch.testing.assert_close(out[:, k], m.eval()(x), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="same (layers|shapes)"):
        train.stack([train.make_cnn("batch"), train.make_cnn("none")])


def test_training_is_deterministic_and_reduces_the_loss(data):
    small = train.Digits(data.x_train[:64], data.y_train[:64], data.x_test, data.y_test, 0.0, 1.0)
    runs = []
    for _ in range(2):
        model = train.make_cnn("batch", seed=0)
        history = train.train(model, small, lr=0.05, steps=40, batch_size=16, seed=0)
        runs.append((history, model))
    (h1, m1), (h2, m2) = runs
    np.testing.assert_array_equal(h1.train_loss, h2.train_loss)
    assert_same_state(m1, m2, atol=0)
    assert not h1.diverged
    assert h1.train_loss[-5:].mean() < 0.5 * h1.train_loss[:5].mean()
    # the model was trained in place, and evaluate agrees with the history
    loss, accuracy = train.evaluate(m1.eval(), data.x_test, data.y_test)
    assert accuracy == pytest.approx(h1.test_accuracy[-1], abs=1e-6)
    assert loss == pytest.approx(h1.test_loss[-1], rel=1e-4)


def test_divergence_is_recorded_and_stays_in_its_copy(data):
    models = [train.make_cnn("none", seed=0), train.make_cnn("none", seed=0)]
    histories = train.train_many(models, data, [1e3, 0.01], 15, 32, [0, 0])
    assert histories[0].diverged and histories[0].final_accuracy == 0.0
    assert not histories[1].diverged and np.all(np.isfinite(histories[1].train_loss))


def test_evaluate_in_training_mode_uses_batch_statistics(data):
    model = train.make_cnn("batch", seed=0)
    train.train(model, data, lr=0.05, steps=30, batch_size=32, seed=0)
    eval_acc = train.evaluate(model.eval(), data.x_test, data.y_test)[1]
    probe = copy.deepcopy(model).train()
    whole = train.evaluate(probe, data.x_test, data.y_test)[1]
    singles = train.evaluate(copy.deepcopy(model).train(), data.x_test, data.y_test, 1)[1]
    assert whole != eval_acc or singles != eval_acc
    assert int(probe[1].num_batches_tracked) == int(model[1].num_batches_tracked) + 1


def test_activations_and_checkpoints(data):
    model = train.make_cnn("batch", seed=0)
    history = train.train(
        model, data, 0.05, 10, 8, seed=0, record_activations_every=5, checkpoint_steps=(0, 10)
    )
    assert list(history.activation_steps) == [0, 5]
    assert [a.shape for a in history.activations] == [(2, 8, 3), (2, 16, 3), (2, 16, 3)]
    q = history.activations[0]
    assert np.all(q[..., 0] <= q[..., 1]) and np.all(q[..., 1] <= q[..., 2])
    assert set(history.checkpoints) == {0, 10}
    fresh = train.make_cnn("batch", seed=0)
    assert_same_state(fresh, _loaded(history.checkpoints[0]), atol=0)
    assert_same_state(model, _loaded(history.checkpoints[10]), atol=0)


def _loaded(state):
    model = train.make_cnn("batch")
    model.load_state_dict(state)
    return model


def test_along_gradient_matches_a_direct_computation(data):
    model = train.make_cnn("batch", seed=0)
    x, y = data.x_train[:32], data.y_train[:32]
    before = copy.deepcopy(model.state_dict())
    result = train.along_gradient(model, x, y, [0.01, 0.1])
    assert_same_state(model, _loaded(before), atol=0)  # running statistics untouched
    moved = copy.deepcopy(model).train()
    loss = nn.functional.cross_entropy(moved(x), y)
    grads = torch.autograd.grad(loss, list(moved.parameters()))
    with torch.no_grad():
        for p, g in zip(moved.parameters(), grads, strict=True):
            p.sub_(0.1 * g)
    loss_moved = nn.functional.cross_entropy(moved(x), y).item()
    assert result.loss0 == pytest.approx(loss.item(), rel=1e-5)
    assert result.loss[1] == pytest.approx(loss_moved, rel=1e-4)
    norm = np.sqrt(sum(float((g**2).sum()) for g in grads))
    assert result.grad_norm == pytest.approx(norm, rel=1e-5)
    np.testing.assert_allclose(result.smoothness, result.gradient_change / (result.etas * norm))


def test_learning_rate_explorer_has_a_frame_and_caption_per_rate():
    """The static explorer holds one distinct frame per learning rate, captioned with that
    rate's accuracies; the live one recomputes its caption when the slider moves."""
    from bnbook import train_figures

    data = train.load_digits_split()
    runs = {}
    for lr in (0.01, 0.1):
        models = [train.make_cnn("batch", seed=s) for s in (0, 1)]
        histories = train.train_many(
            models, data, [lr, lr], steps=10, batch_size=32, seeds=[0, 1], eval_every=5
        )
        runs[lr] = {"batch": histories}
    box = train_figures.lr_explorer_static(runs, 0.1)
    pages = box.stack.children
    assert len(pages) == 2 and box.stack.selected_index == 1
    images = [bytes(page.children[-1].value) for page in pages]
    assert images[0] != images[1] and all(i.startswith(b"\x89PNG") for i in images)
    captions = [page.children[-2].value for page in pages]
    assert "Learning rate 0.01" in captions[0] and "Learning rate 0.1" in captions[1]
    live = train_figures.lr_explorer(runs, 0.1)
    before = live.image.value
    live.slider.value = 0.01
    assert "Learning rate 0.01" in live.caption.value and live.image.value != before


def test_landscape_figure_labels_several_ticks_on_each_log_axis():
    """A panel whose values span a decade or two (the smoothness ℓ: 4 to 40) is labelled at
    1, 2 and 5 times the powers of ten, not at a single "10"."""
    from bnbook import train_figures

    rng = np.random.default_rng(0)
    results = {
        "batch": {
            "loss_range": rng.uniform(1e-3, 5, (3, 3)),
            "smoothness": rng.uniform(4, 40, (3, 3)),
        },
        "none": {
            "loss_range": rng.uniform(1e-3, 5, (3, 3)),
            "smoothness": rng.uniform(4, 40, (3, 3)),
        },
    }
    figure = train_figures.landscape_figure((0, 50, 100), results)
    figure.canvas.draw()
    for ax in figure.axes:
        low, high = ax.get_ylim()
        shown = [
            tick.get_text()
            for tick in ax.get_yticklabels()
            if tick.get_text() and low <= tick.get_position()[1] <= high
        ]
        assert len(shown) >= 3, (ax.get_ylabel(), shown)
