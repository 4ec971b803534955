r"""Homework 2, part 3: re-estimating a trained network's batch-norm statistics
(:data:`RECALIBRATE`, :func:`recalibrate`), ``fn(model, batches) -> model``, with torch.

The problem (:func:`recalibration_problem`): a small MLP (:func:`build_model`, two
``BatchNorm1d`` layers) trained on clean synthetic data, then deployed on data whose sensor
gain and offset changed, so that its running statistics are stale. ``fn`` gets the model (in
eval mode) and unlabelled batches of the new data, and returns the model with every batch
norm's running statistics re-estimated as the cumulative average over the batches, in eval
mode, its weights untouched, computed without gradient.

A trial's arguments are arrays and numbers only (the grader's contract): the parameters as
one vector, the buffers, the counter, the batches and a labelled test set.
:func:`call_recalibrate` (the part's caller, in the sandbox) builds the model from them,
calls ``fn`` and hands back arrays: the buffers, the parameters after the call, whether the
model was left in training mode, whether a batch norm ran with gradient enabled, and the
test accuracy of the model returned. The reference (:func:`recalibrate_variant` without
options) is torch's own recipe: every batch norm reset, ``momentum=None``, a forward pass in
training mode under ``torch.no_grad()`` per batch, then eval mode.

torch is imported only when a function here runs (bnlib itself never needs it); the
homework's instructions ask for it (the wheel's ``homework`` extra).
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from bnlib.check.engine import (
    Check,
    CheckResult,
    Mistake,
    Returned,
    Trial,
    assess,
    describe_exception,
)

FEATURES, WIDTH, CLASSES = 12, 32, 4
TRAIN_SIZE, TRAIN_STEPS, TRAIN_BATCH = 2000, 300, 64
TEST_SIZE = 400
OUTPUTS = ("running_mean", "running_var", "parameters", "training", "grad_enabled", "accuracy")


def _torch():
    import torch  # here, not at the top: bnlib never needs torch but for this part

    return torch


@contextlib.contextmanager
def _one_thread():
    """torch on one thread for the while (these models are tiny: more threads only
    contend), then as it was."""
    torch = _torch()
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _batch_norms(model) -> list:
    torch = _torch()
    return [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


def build_model(params=None, running_mean=None, running_var=None, tracked: int = 0):
    """The MLP, Linear → BatchNorm1d → ReLU, twice, then Linear; its parameters from the
    vector ``params`` and its buffers from ``running_mean``, ``running_var`` (both layers'
    concatenated) and ``tracked`` when given. In eval mode."""
    torch = _torch()
    nn = torch.nn
    model = nn.Sequential(
        nn.Linear(FEATURES, WIDTH),
        nn.BatchNorm1d(WIDTH),
        nn.ReLU(),
        nn.Linear(WIDTH, WIDTH),
        nn.BatchNorm1d(WIDTH),
        nn.ReLU(),
        nn.Linear(WIDTH, CLASSES),
    )
    with torch.no_grad():
        if params is not None:
            torch.nn.utils.vector_to_parameters(torch.from_numpy(params.copy()), model.parameters())
        for k, bn in enumerate(_batch_norms(model)):
            if running_mean is not None:
                bn.running_mean.copy_(torch.from_numpy(running_mean[k * WIDTH : (k + 1) * WIDTH]))
                bn.running_var.copy_(torch.from_numpy(running_var[k * WIDTH : (k + 1) * WIDTH]))
            bn.num_batches_tracked.fill_(int(tracked))
    return model.eval()


def _samples(rng: np.random.Generator, centers: np.ndarray, n: int):
    labels = rng.integers(0, CLASSES, n)
    return centers[labels] + rng.standard_normal((n, FEATURES)), labels


@functools.lru_cache(maxsize=4)
def trained(seed: int) -> tuple:
    """A model trained on clean data (seeded): ``(params, running_mean, running_var,
    tracked, centers)``, the class centres for drawing more data."""
    torch = _torch()
    rng = np.random.default_rng(seed)
    centers = rng.normal(0.0, 1.0, (CLASSES, FEATURES))
    x, y = _samples(rng, centers, TRAIN_SIZE)
    x, y = torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = build_model().train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with _one_thread():
        for _ in range(TRAIN_STEPS):
            index = torch.from_numpy(rng.integers(0, TRAIN_SIZE, TRAIN_BATCH))
            loss = torch.nn.functional.cross_entropy(model(x[index]), y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    bns = _batch_norms(model)
    params = torch.nn.utils.parameters_to_vector(model.parameters()).detach().numpy().copy()
    mean = np.concatenate([bn.running_mean.numpy() for bn in bns])
    var = np.concatenate([bn.running_var.numpy() for bn in bns])
    return params, mean, var, TRAIN_STEPS, centers


@dataclass(frozen=True)
class RecalCase:
    """A trained model (``model_seed``) deployed on shifted data (``seed``): ``batches``
    unlabelled batches of ``batch_size`` for re-estimating the statistics."""

    model_seed: int
    batches: int
    batch_size: int
    seed: int
    dtype: type = np.float32

    def describe(self, with_momentum: bool = False) -> str:
        return f"{self.batches} batches of {self.batch_size} inputs (model {self.model_seed})"

    def data(self) -> dict:
        """The trained model's arrays, the shifted batches and a labelled shifted test set:
        the new sensor multiplies every feature by a gain and adds an offset per feature."""
        params, mean, var, tracked, centers = trained(self.model_seed)
        rng = np.random.default_rng(self.seed)
        gain = rng.uniform(0.3, 0.5)  # a weaker signal ...
        offset = rng.normal(0.0, 3.0, FEATURES)  # ... on another baseline

        def shifted(n):
            x, y = _samples(rng, centers, n)
            return (gain * x + offset).astype(np.float32), y

        batches = shifted(self.batches * self.batch_size)[0]
        test_x, test_y = shifted(TEST_SIZE)
        return {
            "params": params,
            "running_mean": mean,
            "running_var": var,
            "tracked": tracked,
            "batches": batches.reshape(self.batches, self.batch_size, FEATURES),
            "test_x": test_x,
            "test_y": test_y,
        }


RECAL_CASES = (RecalCase(0, 20, 32, seed=41),)


def hidden_recal_cases(rng: np.random.Generator) -> list[RecalCase]:
    """Fresh shifts and batches for another trained model: many batches, and a few small
    ones (the cumulative average weighs every batch alike, whatever their number)."""

    def draw(batches: tuple[int, int], size: tuple[int, int]) -> RecalCase:
        seed = int(rng.integers(2**31))
        return RecalCase(1, int(rng.integers(*batches)), int(rng.integers(*size)), seed)

    return [
        draw((10, 30), (16, 48)),
        draw((10, 30), (16, 48)),
        draw((3, 6), (2, 6)),
        draw((2, 4), (2, 3)),
    ]


def _args(d: dict, c: RecalCase) -> tuple:
    keys = ("params", "running_mean", "running_var", "tracked", "batches", "test_x", "test_y")
    return tuple(d[k] for k in keys)


def _trials(cases) -> list[Trial]:
    return [Trial(c.describe(), _args(c.data(), c), np.dtype(c.dtype)) for c in cases]


def _outputs(model, grad_enabled: bool, test_x, test_y) -> list[np.ndarray]:
    """The arrays a trial hands back (:data:`OUTPUTS`), from the model returned."""
    torch = _torch()
    bns = _batch_norms(model)
    training = any(m.training for m in model.modules())
    buffers = [  # read before the test forward, which in training mode would update them
        np.concatenate([bn.running_mean.detach().numpy() for bn in bns]).astype(np.float32),
        np.concatenate([bn.running_var.detach().numpy() for bn in bns]).astype(np.float32),
    ]
    with torch.no_grad():
        params = torch.nn.utils.parameters_to_vector(model.parameters()).numpy().copy()
        predicted = model(torch.from_numpy(test_x)).argmax(dim=1).numpy()
    return [
        *buffers,
        params.astype(np.float32),
        np.asarray(training, np.float32),
        np.asarray(grad_enabled, np.float32),
        np.asarray(np.mean(predicted == test_y), np.float32),
    ]


def call_recalibrate(fn: Callable, trial: Trial, names: tuple[str, ...]) -> Returned:
    """The part's caller (in the grader's sandbox, and in the notebook's check cell): build
    the stale model from the trial's arrays, call ``fn(model, batches)``, and hand back
    the arrays of :data:`OUTPUTS`, or what went wrong."""
    torch = _torch()
    params, mean, var, tracked, batches, test_x, test_y = trial.args
    model = build_model(params, mean, var, tracked)
    with_grad: list[bool] = []
    for bn in _batch_norms(model):
        bn.register_forward_pre_hook(lambda *_: with_grad.append(torch.is_grad_enabled()))
    inputs = [torch.from_numpy(b.copy()) for b in batches]
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings(), _one_thread():
            warnings.simplefilter("ignore")
            out = fn(model, inputs)
    except (Exception, SystemExit) as exc:  # the student's function may raise anything
        text = describe_exception(exc)
        return Returned(problem=f"your function raised {text}", raised=text)
    if out is None:
        return Returned(problem="returned None; return the model (a missing `return`?)")
    if not isinstance(out, torch.nn.Module):
        return Returned(problem=f"returned a {type(out).__name__}; expected the model")
    found = len(_batch_norms(out))
    if found != 2 or sum(p.numel() for p in out.parameters()) != params.size:
        return Returned(problem="returned another model; return the model you were given")
    try:
        with _one_thread():
            return Returned(outputs=_outputs(out, any(with_grad), test_x, test_y))
    except Exception as exc:  # noqa: BLE001 (a model the student broke)
        return Returned(problem=f"the model returned fails on new inputs: {exc}")


RECAL_MISTAKES = (
    Mistake(
        "recal_momentum",
        "the statistics are an exponential moving average (the layers' momentum of 0.1): "
        "the first batches count for almost nothing, the last ones most. Re-estimating wants "
        "every batch to weigh the same, the cumulative average, which momentum=None gives.",
        {"momentum": 0.1},
        deduction=1.5,
    ),
    Mistake(
        "recal_no_reset",
        "the old statistics were not reset: with momentum=None the layer divides by its "
        "counter num_batches_tracked, which still counts the training steps, so the new "
        "batches barely move the stale statistics. Reset each layer's running statistics "
        "(and its counter) first.",
        {"reset": False},
        deduction=1.5,
    ),
    Mistake(
        "recal_passes_in_eval",
        "the forward passes ran in eval mode: batch norm then uses its running statistics and "
        "updates nothing. The passes must run in training mode.",
        {"passes_in": "eval"},
        deduction=2,
    ),
    Mistake(
        "recal_left_in_train_mode",
        "the model comes back in training mode: it would normalize each test batch with its "
        "own statistics and update the buffers again. Return it in eval mode.",
        {"end_mode": "train"},
        deduction=1,
    ),
    Mistake(
        "recal_with_grad",
        "the forward passes ran with gradient tracking on: nothing is trained here, so they "
        "only cost memory and time. Run them under torch.no_grad().",
        {"grad": True},
        deduction=0.5,
    ),
    Mistake(
        "recal_weights_touched",
        "the weights changed: γ and β came back as 1 and 0 (reset_parameters() resets the "
        "affine weights too, where reset_running_stats() resets only the statistics).",
        {"weights": "reset"},
        deduction=1.5,
    ),
)


def recalibrate_variant(
    params, running_mean, running_var, tracked, batches, test_x, test_y, *, momentum=None,
    reset=True, passes_in="train", end_mode="eval", grad=False, weights="kept",
) -> tuple:  # fmt: skip
    """torch's recipe, with chosen mistakes: the outputs of :data:`OUTPUTS`."""
    torch = _torch()
    with _one_thread():
        return _recipe(torch, params, running_mean, running_var, tracked, batches, test_x,
                       test_y, momentum, reset, passes_in, end_mode, grad, weights)  # fmt: skip


def _recipe(torch, params, running_mean, running_var, tracked, batches, test_x, test_y,
            momentum, reset, passes_in, end_mode, grad, weights) -> tuple:  # fmt: skip
    model = build_model(params, running_mean, running_var, tracked)
    for bn in _batch_norms(model):
        if weights == "reset":
            bn.reset_parameters()
        elif reset:
            bn.reset_running_stats()
        bn.momentum = momentum
    model.train(passes_in == "train")
    with torch.set_grad_enabled(grad):
        for batch in batches:
            model(torch.from_numpy(batch.copy()))
    model.train(end_mode == "train")
    return tuple(_outputs(model, grad, test_x, test_y))


RECALIBRATE = Check(
    name="recalibrate",
    arg_names=("params", "running_mean", "running_var", "tracked", "batches", "test_x", "test_y"),
    outputs=OUTPUTS,
    reference=recalibrate_variant,
    public=lambda: _trials(RECAL_CASES),
    hidden=lambda rng: _trials(hidden_recal_cases(rng)),
    variant=recalibrate_variant,
    mistakes=RECAL_MISTAKES,
    passed_note="Buffers, weights, mode and test accuracy as torch's recipe gives them.",
)


def recalibrate(fn: Callable) -> CheckResult:
    """Check ``fn(model, batches) -> model``: every batch norm's running statistics
    re-estimated from ``batches`` as torch's recipe does (module docstring), the model
    returned in eval mode with its weights untouched."""
    if not callable(fn):
        return RECALIBRATE(fn)  # the engine's report of a non-function
    trials = RECALIBRATE.public()
    return assess(RECALIBRATE, trials, [call_recalibrate(fn, t, OUTPUTS) for t in trials])


def recalibration_problem() -> SimpleNamespace:
    """The homework's stale model and data (the check's public case): ``model`` (eval mode),
    ``batches`` (a list of unlabelled input tensors), ``test_x``, ``test_y`` (tensors) and
    ``clean_test_x``, the same test inputs before the sensor changed."""
    torch = _torch()
    case = RECAL_CASES[0]
    d = case.data()
    model = build_model(d["params"], d["running_mean"], d["running_var"], d["tracked"])
    centers = trained(case.model_seed)[4]
    rng = np.random.default_rng(case.seed + 1)
    clean_x, clean_y = _samples(rng, centers, TEST_SIZE)
    return SimpleNamespace(
        model=model,
        batches=[torch.from_numpy(b) for b in d["batches"]],
        test_x=torch.from_numpy(d["test_x"]),
        test_y=torch.from_numpy(d["test_y"]),
        clean_x=torch.from_numpy(clean_x.astype(np.float32)),
        clean_y=torch.from_numpy(clean_y),
    )
