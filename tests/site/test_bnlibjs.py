"""Batch norm computed in the page (js/): ``window.bnlibjs.forward`` and ``backward`` on
random and edge-case inputs generated here agree with ``bnlib.BatchNorm2d`` (float64) to
1e-10 of each array's largest value, driven in Chromium; only the pages that use it load it.

Speed is not tested here (``benchmarks/bench_explorers.py`` measures the redraw).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import bnlib
from tests.site.live import (
    TORCH_WORDS,
    close_to_largest,
)

# -- window.bnlibjs against bnlib ------------------------------------------------------------


def make_case(name: str, rng: np.random.Generator) -> dict:
    """Inputs for one comparison: x, dy and the options, as plain lists."""
    shapes = {
        "random train": (3, 4, 5, 2),
        "random eval": (2, 3, 4, 4),
        "N = 1, H·W > 1": (1, 3, 3, 4),
        "1×1 maps": (8, 3, 1, 1),
        "means of 1e4": (4, 2, 3, 3),
        "ε = 1": (2, 2, 3, 2),
        "ε = 0.3, no γ and β": (5, 2, 2, 2),
        "momentum None after 3 batches": (2, 3, 2, 3),
        "evaluation, one value per channel": (1, 2, 1, 1),
    }
    shape = shapes[name]
    c = shape[1]
    x = rng.standard_normal(shape) * rng.uniform(0.5, 3) + rng.uniform(-2, 2)
    if name == "means of 1e4":  # (at std 1e-2, mean/std = 1e6 leaves any float64 code
        x = 1e4 + rng.standard_normal(shape)  # ~1e-10 from the exact x̂: bnlib included)
    options = {
        "eps": {"ε = 1": 1.0, "ε = 0.3, no γ and β": 0.3}.get(name, 1e-5),
        "momentum": None if name.startswith("momentum None") else float(rng.uniform(0, 1)),
        "training": "eval" not in name,
        "runningMean": rng.standard_normal(c).tolist(),
        "runningVar": rng.uniform(0.2, 3, c).tolist(),
        "numBatchesTracked": 3 if name.startswith("momentum None") else int(rng.integers(0, 9)),
    }
    if name != "ε = 0.3, no γ and β":
        options["gamma"] = rng.standard_normal(c).tolist()
        options["beta"] = rng.standard_normal(c).tolist()
    return {
        "shape": list(shape),
        "x": x.ravel().tolist(),
        "dy": rng.standard_normal(shape).ravel().tolist(),
        "opts": options,
    }


def bnlib_result(case: dict) -> dict:
    """The same forward and backward with bnlib.BatchNorm2d, in float64."""
    shape, o = tuple(case["shape"]), case["opts"]
    x = np.array(case["x"]).reshape(shape)
    dy = np.array(case["dy"]).reshape(shape)
    c = shape[1]
    bn = bnlib.BatchNorm2d(c, eps=o["eps"], momentum=o["momentum"])
    bn.weight = np.array(o.get("gamma", np.ones(c)), np.float64)
    bn.bias = np.array(o.get("beta", np.zeros(c)), np.float64)
    bn.running_mean = np.array(o["runningMean"], np.float64)
    bn.running_var = np.array(o["runningVar"], np.float64)
    bn.num_batches_tracked = o["numBatchesTracked"]
    bn.train(o["training"])
    y = bn(x)
    dx = bn.backward(dy)
    mean, var = bnlib.batch_stats(x)
    return {
        "y": y.ravel(),
        "mean": mean,
        "var": var,
        "runningMean": bn.running_mean,
        "runningVar": bn.running_var,
        "numBatchesTracked": bn.num_batches_tracked,
        "dx": dx.ravel(),
        "dgamma": bn.grad_weight,
        "dbeta": bn.grad_bias,
    }


RUN_CASE = """({x, dy, shape, opts}) => {
    const f = window.bnlibjs.forward(Float64Array.from(x), shape, opts);
    const b = window.bnlibjs.backward(Float64Array.from(dy), Float64Array.from(x), shape, opts);
    const list = (a) => Array.from(a);
    return {y: list(f.y), mean: list(f.mean), var: list(f.var),
            runningMean: list(f.runningMean), runningVar: list(f.runningVar),
            numBatchesTracked: f.numBatchesTracked,
            dx: list(b.dx), dgamma: list(b.dgamma), dbeta: list(b.dbeta)};
}"""

CASES = [
    "random train",
    "random eval",
    "N = 1, H·W > 1",
    "1×1 maps",
    "means of 1e4",
    "ε = 1",
    "ε = 0.3, no γ and β",
    "momentum None after 3 batches",
    "evaluation, one value per channel",
]


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_bnlibjs_agrees_with_bnlib(playground_page, name, seed):
    case = make_case(name, np.random.default_rng([seed, CASES.index(name)]))
    got = playground_page.evaluate(RUN_CASE, case)
    expected = bnlib_result(case)
    assert got["numBatchesTracked"] == expected.pop("numBatchesTracked")
    for key, value in expected.items():
        close_to_largest(got[key], value, f"{name}, seed {seed}: {key}")


def test_one_value_per_channel_in_training_is_torch_error(playground_page):
    with pytest.raises(ValueError) as torch_error:
        torch.nn.BatchNorm2d(2)(torch.zeros(1, 2, 1, 1))
    assert str(torch_error.value).startswith(TORCH_WORDS)
    messages = playground_page.evaluate(
        """() => [() => bnlibjs.forward([1, 2], [1, 2, 1, 1]),
                  () => bnlibjs.backward([1, 1], [1, 2], [1, 2, 1, 1])].map(f => {
                 try { f(); return null } catch (e) { return e instanceof Error && e.message }
             })"""
    )
    assert all(m and m.startswith(TORCH_WORDS) for m in messages), messages


def test_pages_without_it_do_not_load_it(site):
    for page in site.joinpath("chapters").glob("*.html"):
        html = page.read_text(encoding="utf-8")
        uses = "data-bnbook-live" in html
        assert ("bnlibjs/bnlibjs.js" in html) == uses, page.name
