r"""Training small networks on real digits, with and without batch norm (needs torch, sklearn).

The book's training chapter and the chapters after it share this module. It is imported
explicitly (``from bnbook import train``), never by ``import bnlib``, which needs NumPy only.

- **Data**: :func:`load_digits_split`, scikit-learn's 1,797 handwritten 8×8 digits (they ship
  inside the package: nothing is downloaded), split once into fixed, stratified train and
  test sets, as float32 tensors of shape ``(N, 1, 8, 8)``.
- **Models**: :func:`make_cnn`, three conv → norm → ReLU blocks and a linear head, with
  ``norm="batch"`` (``BatchNorm2d``), ``"group"`` (``GroupNorm``), ``"layer"``
  (``GroupNorm`` with one group: LayerNorm over each image's ``C·H·W`` values) or ``"none"``;
  :func:`make_mlp`, the same idea with linear layers and ``BatchNorm1d``/``LayerNorm``.
- **Training**: :func:`train` (one model) and :func:`train_many` (several models, each with
  its own seed, learning rate and batches, in one pass), SGD with momentum on the
  cross-entropy; :func:`evaluate` for loss and accuracy.

How :func:`train_many` is fast: a tiny network on 8×8 images spends most of its time in
PyTorch's per-call overhead, not in arithmetic. So :func:`stack` lays K models side by side
as *one* wide model whose convolutions have ``groups=K`` (copy k's channels only see copy
k's channels), whose ``BatchNorm2d`` has K·C channels (batch norm is per channel, so the
copies' statistics never mix), and whose ``GroupNorm`` has K times the groups. Copy k gets
its own images in input channel k. Its outputs, gradients and updates are exactly those of
model k trained alone (up to float rounding; ``tests/book/test_train.py`` checks it), and
:func:`unstack` takes model k back out (``bnbook.wide``).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

# The data, the networks and several-models-as-one live in modules of their own; their
# names are part of this module's interface (``train.load_digits_split``, ``train.make_cnn``).
from bnbook.digits import Digits, batch_indices, load_digits_split  # noqa: F401
from bnbook.models import (  # noqa: F401
    CNN_CHANNELS,
    GROUP_SIZE,
    MLP_HIDDEN,
    MOMENTUM,
    NORMS,
    NUM_CLASSES,
    RESNET_CHANNELS,
    Residual,
    make_cnn,
    make_mlp,
    make_resnet,
    norm_layer,
    norm_layers,
    pre_activations,
    scale_weights,
)
from bnbook.wide import GroupedLinear, stack, unstack, unstack_into  # noqa: F401

# --------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------


@dataclass
class History:
    """What one training run recorded.

    ``train_loss[t]``: the cross-entropy of the batch at step t (before its update).
    ``eval_steps``, ``test_loss``, ``test_accuracy``: measured in eval mode on the test set
    after those many steps (0 = before training). ``diverged``: the loss became NaN or
    infinite (training of that run stops counting; its later losses are NaN).
    ``activations``: per pre-activation layer, ``(records, C, 3)`` percentiles (15, 50, 85)
    of each channel over the training batch at steps ``activation_steps``.
    ``checkpoints``: step → a copy of the model's state dict at that step.
    """

    lr: float
    batch_size: int
    seed: int
    steps: int
    train_loss: np.ndarray
    eval_steps: np.ndarray
    test_loss: np.ndarray
    test_accuracy: np.ndarray
    diverged: bool
    activation_steps: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    activations: list[np.ndarray] = field(default_factory=list)
    checkpoints: dict[int, dict] = field(default_factory=dict)

    @property
    def final_accuracy(self) -> float:
        """Test accuracy at the end (0 for a run that diverged)."""
        return 0.0 if self.diverged else float(self.test_accuracy[-1])

    def final_loss(self, last: int = 20) -> float:
        """Mean training loss over the last ``last`` steps (inf for a run that diverged)."""
        return math.inf if self.diverged else float(np.mean(self.train_loss[-last:]))


def _learning_rates(wide: nn.Sequential, lrs: Sequence[float]) -> list[tuple]:
    """``(parameter, learning rate)`` for every parameter of ``wide``; the rate is a tensor
    that gives each copy's rows (dim 0 holds the copies) that copy's rate."""
    pairs = []
    for module in wide.modules():
        if not hasattr(module, "copy_range"):
            continue
        first, end = module.copy_range
        rates = torch.tensor(lrs[first:end], dtype=torch.float32)
        for p in module.parameters(recurse=False):
            per_row = rates.repeat_interleave(p.shape[0] // (end - first))
            pairs.append((p, per_row.view(-1, *([1] * (p.dim() - 1)))))
    return pairs


@torch.no_grad()
def _evaluate_wide(wide: nn.Sequential, x: torch.Tensor, y: torch.Tensor, copies: int):
    """Test loss and accuracy of each copy, in eval mode: two arrays of shape (K,)."""
    was_training = wide.training
    wide.eval()
    logits = wide(x.expand(-1, copies, -1, -1).contiguous() if x.dim() == 4 else x)
    logits = logits.view(x.shape[0], copies, NUM_CLASSES)
    labels = y.view(-1, 1).expand(-1, copies)
    loss = F.cross_entropy(logits.transpose(1, 2), labels, reduction="none").mean(0)
    accuracy = (logits.argmax(2) == labels).float().mean(0)
    wide.train(was_training)
    return loss.numpy().astype(np.float64), accuracy.numpy().astype(np.float64)


def train_many(
    models: Sequence[nn.Sequential],
    data: Digits,
    lrs: Sequence[float],
    steps: int,
    batch_size: int,
    seeds: Sequence[int],
    eval_every: int | None = None,
    record_activations_every: int | None = None,
    checkpoint_steps: Sequence[int] = (),
) -> list[History]:
    r"""Train each ``models[k]`` with learning rate ``lrs[k]`` on batches drawn with
    ``seeds[k]``, all at once (:func:`stack`); the models are updated in place.

    Each step, for every model: a batch of ``batch_size`` training images
    (:func:`batch_indices`), the mean cross-entropy, its gradient ``g``, and SGD with
    momentum :data:`MOMENTUM` (μ), exactly as ``torch.optim.SGD(lr, momentum=μ)``:

    .. math:: b \leftarrow \mu\, b + g, \qquad \theta \leftarrow \theta - \text{lr}\cdot b .

    The model is in training mode (batch norm uses batch statistics and updates its running
    statistics). Every ``eval_every`` steps (and at 0 and the end) each model is evaluated
    on the test set in eval mode.
    """
    k = len(models)
    if not (len(lrs) == len(seeds) == k):
        raise ValueError(
            f"need one lr and one seed per model: {k} models, {len(lrs)} lrs, {len(seeds)} seeds"
        )
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    n = data.x_train.shape[0]
    indices = torch.stack([batch_indices(n, batch_size, steps, s) for s in seeds], dim=2)
    eval_every = eval_every or steps
    eval_at = sorted({0, steps, *range(eval_every, steps, eval_every)})
    wide = stack(models).train()
    params, lr_per_param = zip(*_learning_rates(wide, list(lrs)), strict=True)
    if len(params) != len(list(wide.parameters())):
        raise RuntimeError("stack left a parameter without a copy range")  # a bug, not input
    buffers = [torch.zeros_like(p) for p in params]

    recorded = pre_activations(models[0]) if record_activations_every else []
    captured: dict[int, torch.Tensor] = {}
    hooks = [
        wide[i].register_forward_hook(lambda mod, inp, out, i=i: captured.__setitem__(i, out))
        for i in recorded
    ]
    activation_steps, activations = [], []
    losses = np.full((steps, k), np.nan)
    evals = []
    checkpoints: dict[int, list[dict]] = {}
    for step in range(steps + 1):
        if step in eval_at:
            evals.append(_evaluate_wide(wide, data.x_test, data.y_test, k))
        if step in checkpoint_steps:
            checkpoints[step] = [unstack(wide, j, models[j]).state_dict() for j in range(k)]
        if step == steps:
            break
        idx = indices[step]  # (batch_size, K)
        x = data.x_train[idx].view(batch_size, k, *data.x_train.shape[2:])
        logits = wide(x).view(batch_size, k, NUM_CLASSES)
        loss = F.cross_entropy(logits.transpose(1, 2), data.y_train[idx], reduction="none")
        per_copy = loss.mean(0)  # (K,)
        losses[step] = per_copy.detach().numpy()
        if record_activations_every and step % record_activations_every == 0:
            activation_steps.append(step)
            activations.append([_channel_percentiles(captured[i], k) for i in recorded])
        for p in params:
            p.grad = None
        per_copy.sum().backward()  # copies share no parameter: each gets its own gradient
        sgd_step(params, buffers, lr_per_param)
    for hook in hooks:
        hook.remove()
    for j in range(k):
        unstack_into(wide, j, models[j])

    histories = []
    for j in range(k):
        diverged = not np.all(np.isfinite(losses[:, j]))
        histories.append(
            History(
                lr=float(lrs[j]),
                batch_size=batch_size,
                seed=int(seeds[j]),
                steps=steps,
                train_loss=losses[:, j].copy(),
                eval_steps=np.array(eval_at),
                test_loss=np.array([e[0][j] for e in evals]),
                test_accuracy=np.array([e[1][j] for e in evals]),
                diverged=diverged,
                activation_steps=np.array(activation_steps, dtype=int),
                activations=[
                    np.stack([rec[layer][j] for rec in activations])
                    for layer in range(len(recorded))
                ]
                if activations
                else [],
                checkpoints={s: states[j] for s, states in checkpoints.items()},
            )
        )
    return histories


@torch.no_grad()
def sgd_step(params, buffers, lrs, momentum: float = MOMENTUM) -> None:
    """One step of SGD with momentum, as ``torch.optim.SGD(lr, momentum)`` takes it: for
    each parameter p, its gradient g, its momentum buffer b and its learning rate lr
    (a number, or a tensor that gives each copy's rows their own rate)."""
    for p, b, lr in zip(params, buffers, lrs, strict=True):
        b.mul_(momentum).add_(p.grad)  # b ← μ·b + g
        p.sub_(lr * b)  # p ← p − lr·b


def _channel_percentiles(out: torch.Tensor, copies: int) -> list[np.ndarray]:
    """Per copy, the (15, 50, 85) percentiles of each channel of ``out`` ``(N, K·C, ...)``."""
    out = out.detach()
    kc = out.shape[1]
    per_channel = out.transpose(0, 1).reshape(kc, -1)  # (K·C, N·H·W)
    q = torch.quantile(per_channel, torch.tensor([0.15, 0.5, 0.85]), dim=1).T  # (K·C, 3)
    return list(q.view(copies, kc // copies, 3).numpy().astype(np.float64))


def train(
    model: nn.Sequential,
    data: Digits,
    lr: float,
    steps: int,
    batch_size: int,
    seed: int = 0,
    **options,
) -> History:
    """Train one model in place (:func:`train_many` with one model); returns its history."""
    return train_many([model], data, [lr], steps, batch_size, [seed], **options)[0]


@torch.no_grad()
def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int | None = None
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on ``(x, y)``, in the model's current mode.

    ``batch_size=None`` passes all of ``x`` at once; otherwise in consecutive batches of
    that size (which matters in training mode, where batch norm uses each batch's
    statistics). In training mode batch norm's running statistics are updated, as in any
    forward pass: pass a copy (``copy.deepcopy(model)``) to keep them.
    """
    batch_size = batch_size or x.shape[0]
    total_loss, correct = 0.0, 0
    for start in range(0, x.shape[0], batch_size):
        logits = model(x[start : start + batch_size])
        labels = y[start : start + batch_size]
        total_loss += float(F.cross_entropy(logits, labels, reduction="sum"))
        correct += int((logits.argmax(1) == labels).sum())
    return total_loss / x.shape[0], correct / x.shape[0]


# --------------------------------------------------------------------------------------
# The loss landscape along the gradient (Santurkar et al. 2018)
# --------------------------------------------------------------------------------------


def loss_and_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    """The training-mode loss of ``model`` on ``(x, y)`` and its gradient (one tensor per
    parameter). Works on a copy: the model, and its running statistics, stay as they are."""
    probe = copy.deepcopy(model).train()
    for layer in norm_layers(probe):
        if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
            layer.momentum = 0.0  # running = (1 − 0)·running + 0·batch: unchanged
    loss = F.cross_entropy(probe(x), y)
    grads = torch.autograd.grad(loss, list(probe.parameters()))
    return float(loss.detach()), [g.detach() for g in grads]


@dataclass
class AlongGradient:
    """What happens when ``model`` steps ``η`` along its negative gradient ``g``.

    ``loss[i]``: L(θ − η_i g); ``gradient_change[i]``: ‖∇L(θ − η_i g) − g‖;
    ``smoothness[i]``: gradient_change / ‖η_i g‖, how fast the gradient changes per unit
    of distance moved. Its maximum is what Santurkar et al. call the "effective
    β-smoothness" (a Lipschitz constant of the gradient; no relation to batch norm's β).
    """

    etas: np.ndarray
    loss0: float
    grad_norm: float
    loss: np.ndarray
    gradient_change: np.ndarray
    smoothness: np.ndarray


def along_gradient(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, etas: Sequence[float]
) -> AlongGradient:
    """Loss and gradient at θ − η·∇L(θ) for each η, on the fixed batch ``(x, y)``."""
    loss0, g = loss_and_gradient(model, x, y)
    grad_norm = math.sqrt(sum(float((gi**2).sum()) for gi in g))
    losses, changes = [], []
    for eta in etas:
        moved = copy.deepcopy(model)
        with torch.no_grad():
            for p, gi in zip(moved.parameters(), g, strict=True):
                p.sub_(eta * gi)
        loss, g_moved = loss_and_gradient(moved, x, y)
        losses.append(loss)
        pairs = zip(g_moved, g, strict=True)
        changes.append(math.sqrt(sum(float(((a - b) ** 2).sum()) for a, b in pairs)))
    etas = np.asarray(etas, dtype=float)
    changes = np.asarray(changes)
    return AlongGradient(
        etas, loss0, grad_norm, np.asarray(losses), changes, changes / (etas * grad_norm)
    )
