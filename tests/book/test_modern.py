"""bnbook.modern, bnbook.sequence and bnbook.modern_figures: the residual network and its
zero-initialised γ, the dropout MLP, training with weight decay (against torch.optim.SGD),
the sorting task and the tiny transformer, and the chapter's figures."""

import copy

import matplotlib
import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from bnbook import modern, sequence, style, train
from bnbook import modern_figures as mfig

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data():
    return train.load_digits_split()


# --------------------------------------------------------------------------------------
# The residual network
# --------------------------------------------------------------------------------------


def test_residual_net_shape_and_blocks(data):
    net = modern.make_residual_net(3, width=4, seed=1)
    assert net(data.x_train[:5]).shape == (5, 10)
    blocks = modern.residual_blocks(net)
    assert len(blocks) == 3
    assert all(isinstance(b.body[-1], nn.BatchNorm2d) for b in blocks)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 1 + 2 * 3 and all(c.bias is None for c in convs)
    plain = modern.make_residual_net(2, norm="none")
    assert all(m.bias is not None for m in plain.modules() if isinstance(m, nn.Conv2d))


def test_zero_gamma_blocks_are_the_identity(data):
    net = modern.make_residual_net(5, zero_gamma=True, seed=2).train()
    other = modern.make_residual_net(5, zero_gamma=False, seed=2)
    # the same weights apart from the zeroed γ (the seed fixes them)
    for (name, a), (_, b) in zip(net.named_parameters(), other.named_parameters(), strict=True):
        if not name.endswith("body.4.weight"):
            assert torch.equal(a, b), name
    h = net[:4](data.x_train[:32])
    for layer in net[4:-3]:
        out = layer(h)
        assert torch.equal(out, h)  # every block (and the ReLU after it) passes h through
        h = out
    # the same function as the stem and head alone
    logits = net(data.x_train[:32])
    head = net[-3:](net[:4](data.x_train[:32]))
    assert torch.equal(logits, head)
    variances = modern.stream_variances(net, data.x_train[:32])
    assert len(variances) == 6 and np.allclose(variances, variances[0])


def test_stream_variances_against_a_manual_pass(data):
    net = modern.make_residual_net(2, seed=0).train()
    x = data.x_train[:16]
    got = modern.stream_variances(net, x)
    with torch.no_grad():
        a = net[:4](x)
        b = net[5](net[4](a))
        c = net[7](net[6](b))
    expected = [float(t.double().var(dim=(0, 2, 3), unbiased=False).mean()) for t in (a, b, c)]
    assert np.allclose(got, expected, rtol=1e-5)
    assert got[2] > got[0]  # γ = 1: the branches add variance (batch statistics)


def test_zero_gamma_needs_a_norm():
    with pytest.raises(ValueError, match="zero_gamma"):
        modern.make_residual_net(2, norm="none", zero_gamma=True)
    with pytest.raises(ValueError, match="depth"):
        modern.make_residual_net(-1)


def test_residual_nets_train_as_one_wide_model(data):
    """train_many on two residual nets gives what training each alone gives."""
    nets = [modern.make_residual_net(2, zero_gamma=z, seed=s) for z, s in ((True, 0), (False, 1))]
    alone = [copy.deepcopy(n) for n in nets]
    together = train.train_many(nets, data, [0.1, 0.05], 3, 8, [0, 1])
    for net, lr, seed, history in zip(alone, (0.1, 0.05), (0, 1), together, strict=True):
        single = train.train(net, data, lr, 3, 8, seed)
        assert np.allclose(single.train_loss, history.train_loss, rtol=1e-4)


# --------------------------------------------------------------------------------------
# Dropout and weight decay
# --------------------------------------------------------------------------------------


def test_dropout_mlp_places(data):
    x = data.x_train[:8]
    for place in modern.DROPOUT_PLACES:
        net = modern.make_dropout_mlp(place, 0.5, hidden=16, seed=0)
        assert net(x).shape == (8, 10)
        kinds = [type(m) for m in net]
        drop = kinds.index(nn.Dropout) if nn.Dropout in kinds else None
        bns = [i for i, k in enumerate(kinds) if k is nn.BatchNorm1d]
        if place == "before":
            assert bns[0] < drop < bns[1]
        elif place == "after":
            assert drop > bns[1]
        else:
            assert drop is None
    with pytest.raises(ValueError, match="place"):
        modern.make_dropout_mlp("middle")


def test_stacked_dropout_mlps_match_in_eval_mode(data):
    nets = [modern.make_dropout_mlp("before", 0.5, hidden=16, seed=s) for s in (0, 1)]
    for net in nets:
        net.eval()
    wide = train.stack(nets).eval()
    x = data.x_test[:10]
    with torch.no_grad():
        logits = wide(x.expand(-1, 2, -1, -1).contiguous()).view(10, 2, 10)
        for k, net in enumerate(nets):
            assert torch.allclose(logits[:, k], net(x), atol=1e-5)


def test_train_with_decay_matches_torch_sgd(data):
    """Against torch.optim.SGD(weight_decay) with γ, β in a group without decay."""
    settings = [(1e-2, True, 0), (1e-2, False, 1), (0.0, True, 2)]
    nets = [train.make_cnn("batch", channels=(4, 4, 4), seed=s) for _, _, s in settings]
    references = [copy.deepcopy(n) for n in nets]
    lr, steps, batch = 0.05, 4, 8
    runs = modern.train_with_decay(
        nets, data, lr, [d for d, _, _ in settings], [n for _, n, _ in settings], steps,
        batch, [s for _, _, s in settings],
    )  # fmt: skip
    for (decay, on_norms, seed), net, ref in zip(settings, nets, references, strict=True):
        norm_params = {id(p) for m in train.norm_layers(ref) for p in m.parameters()}
        groups = [
            {"params": [p for p in ref.parameters() if id(p) not in norm_params]},
            {"params": [p for p in ref.parameters() if id(p) in norm_params],
             "weight_decay": decay if on_norms else 0.0},
        ]  # fmt: skip
        optimizer = torch.optim.SGD(groups, lr=lr, momentum=train.MOMENTUM, weight_decay=decay)
        indices = train.batch_indices(data.x_train.shape[0], batch, steps, seed)
        ref.train()
        for step in range(steps):
            idx = indices[step]
            loss = F.cross_entropy(ref(data.x_train[idx]), data.y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        for a, b in zip(net.parameters(), ref.parameters(), strict=True):
            assert torch.allclose(a, b, atol=1e-5), (decay, on_norms)
        k = settings.index((decay, on_norms, seed))
        convs = [m for m in ref if isinstance(m, nn.Conv2d)]
        norms = [float(c.weight.detach().norm()) for c in convs]
        assert np.allclose(runs.weight_norms[-1, k], norms, rtol=1e-5)
    assert runs.train_loss.shape == (steps, 3) and runs.test_accuracy.shape == (3,)
    assert runs.weight_norms.shape == (steps + 1, 3, 3)


# --------------------------------------------------------------------------------------
# The sorting task and the tiny transformer
# --------------------------------------------------------------------------------------


def test_sort_batch_and_targets():
    batch = sequence.sort_batch(50, torch.Generator().manual_seed(0))
    targets = batch.targets()
    for tokens, length, target in zip(batch.tokens, batch.lengths, targets, strict=True):
        length = int(length)
        digits, sorted_digits = tokens[:length], tokens[length + 1 : 2 * length + 1]
        assert len(set(digits.tolist())) == length and tokens[length] == sequence.SEP
        assert sorted_digits.tolist() == sorted(digits.tolist())
        assert torch.all(tokens[2 * length + 1 :] == sequence.PAD)
        assert target[length : 2 * length].tolist() == sorted_digits.tolist()
        assert torch.all(target[:length] == -100) and torch.all(target[2 * length :] == -100)
    fixed = sequence.sort_batch(4, torch.Generator().manual_seed(0), length=3)
    assert torch.all(fixed.lengths == 3)


def test_token_norm_against_torch():
    x = torch.randn(3, 5, 8, generator=torch.Generator().manual_seed(0))
    batch = sequence.TokenNorm("batch", 8).train()
    expected = F.batch_norm(x.reshape(15, 8), None, None, training=True)
    assert torch.allclose(batch(x), expected.view(3, 5, 8), atol=1e-5)
    layer = sequence.TokenNorm("layer", 8)
    assert torch.allclose(layer(x), F.layer_norm(x, (8,)), atol=1e-6)
    with pytest.raises(ValueError, match="norm"):
        sequence.TokenNorm("group", 8)


def test_layer_norm_model_is_causal_and_per_sequence_batch_norm_is_not():
    batch = sequence.sort_batch(6, torch.Generator().manual_seed(1), length=4)
    changed = batch.tokens.clone()
    changed[0, 8] = (changed[0, 8] + 1) % 10
    for norm, independent in (("layer", True), ("batch", False)):
        model = sequence.TinyTransformer(norm, seed=0).train()
        with torch.no_grad():
            moved = (model(changed) - model(batch.tokens))[:, :8].abs().max()
        assert (moved == 0) == independent, norm


class Oracle(nn.Module):
    """Logits that put the right next token first: the smallest prompt digit above the
    last sorted one (the separator counts as below every digit)."""

    def forward(self, tokens):
        n, t = tokens.shape
        logits = torch.zeros(n, t, sequence.VOCAB)
        for i in range(n):
            row = tokens[i].tolist()
            length = row.index(sequence.SEP)
            digits = sorted(row[:length])
            for pos in range(length, t):
                done = pos - length
                if done < length:
                    logits[i, pos, digits[done]] = 1.0
        return logits


def test_accuracy_and_decoding_with_an_oracle():
    batch = sequence.sort_batch(20, torch.Generator().manual_seed(2))
    assert sequence.teacher_forced_accuracy(Oracle(), batch) == 1.0
    assert sequence.decode(Oracle(), batch) == 1.0
    untrained = sequence.TinyTransformer("layer", seed=0).eval()
    assert sequence.decode(untrained, batch) < 0.5


# --------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------


def chapter_figures():
    rng = np.random.default_rng(0)
    three = rng.uniform(0.5, 2, (3, 3))
    yield mfig.stream_figure({"a": rng.uniform(0, 5, (3, 5)), "b": np.ones((3, 5))})
    yield mfig.lr_sweep_figure((0.1, 0.2, 0.4), {"a": three, "b": three}, np.log(10))
    yield mfig.sequence_figure(
        {"batch": rng.uniform(0.01, 2, (3, 20)), "layer": rng.uniform(0.01, 2, (3, 20))},
        {n: {"one,\nmode": [1, 0.9, 0.8], "two": [1, 1, 1]} for n in ("batch", "layer")},
    )
    yield mfig.dropout_figure(
        (0.2, 0.5, 0.8), {"before": three, "after": three}, three,
        {"before": three / 2, "after": three / 2, "none": three / 2},
    )  # fmt: skip
    yield mfig.decay_figure({"a": rng.uniform(1, 3, (30, 3)), "b": np.ones((30, 3))}, 0.05)


def test_figures_are_readable_and_fit_the_column():
    for figure in chapter_figures():
        assert style.too_small_texts(figure) == []
        assert figure.get_figwidth() <= style.FULL_WIDTH + 1e-9
        assert figure.dpi == style.DPI
        assert isinstance(figure, matplotlib.figure.Figure)


def test_depth_explorers():
    rng = np.random.default_rng(1)
    lrs = (0.05, 0.2, 0.4)
    by_depth = {d: {"γ₀ = 1": rng.uniform(0, 2, (3, 3)), "γ₀ = 0": np.ones((3, 3))}
                for d in (3, 6)}  # fmt: skip
    box = mfig.depth_explorer_static(lrs, by_depth, np.log(10), 6)
    assert len(box.stack.children) == 2 and box.slider.index == 1
    assert "bnbook-explorer" in box._dom_classes
    live = mfig.depth_explorer(lrs, by_depth, np.log(10), 6)
    live.slider.value = 3
    means = by_depth[3]["γ₀ = 1"].mean(axis=1)
    assert "3 residual blocks" in live.caption.value
    assert f"{means[0]:.2f}" in live.caption.value
    lower = int(np.sum(1.0 < means))
    assert f"at {lower} of the 3 rates" in live.message.value
    figure, _, draw = mfig._depth_figure(lrs, by_depth, np.log(10))
    draw(6)
    assert style.too_small_texts(figure) == []
