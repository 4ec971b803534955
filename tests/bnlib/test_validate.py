"""Bad input to bnlib's functions gets a clear error (bnlib/_validate.py), never garbage."""

import numpy as np
import pytest

import bnlib
from bnlib import _validate


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda x: bnlib.batch_norm(x[0, 0, 0], training=True), ValueError, "at least 2 dim"),
        (lambda x: bnlib.batch_norm(x.astype(int), training=True), TypeError, "got dtype int"),
        (lambda x: bnlib.batch_norm(x.astype(np.float16), training=True), TypeError, "float16"),
        (lambda x: bnlib.batch_norm(x, training=True, eps=0.0), ValueError, "eps must be"),
        (lambda x: bnlib.batch_norm(x, training=True, eps=float("nan")), ValueError, "eps must"),
        (lambda x: bnlib.batch_norm(x, training=True, momentum=2), ValueError, "momentum must"),
        (lambda x: bnlib.batch_norm(x), ValueError, "running_mean and running_var must be given"),
        (
            lambda x: bnlib.batch_norm(x, weight=np.ones(3), training=True),
            ValueError,
            r"weight must have shape \(2,\)",
        ),
        (
            lambda x: bnlib.batch_norm(x, np.zeros(2, int), np.ones(2), training=True),
            TypeError,
            "running_mean must be a float32 or float64 array",
        ),
        (
            lambda x: bnlib.batch_norm(x[:1, :, :1, :1], training=True),
            ValueError,
            r"Expected more than 1 value per channel when training, got input size \(1, 2, 1, 1\)",
        ),
        (
            lambda x: bnlib.batch_norm_backward(x[:, :, :1], x),
            ValueError,
            "dy must have the shape of x",
        ),
        (
            lambda x: bnlib.batch_norm_eval_backward(x, x, None, None),
            ValueError,
            "running_mean and running_var must be given",
        ),
        (
            lambda x: bnlib.batch_norm_backward(x, x, eps=-1.0),
            ValueError,
            "eps must be a positive",
        ),
    ],
)
def test_bad_inputs_to_functions(call, error, words):
    x = np.ones((2, 2, 3, 3), np.float32)
    with pytest.raises(error, match=words):
        call(x)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(dy=np.ones((2, 3, 2)), x=np.ones((2, 3, 3))), ValueError, "shape of x"),
        (dict(dy=np.ones((2, 3)), x=np.ones((2, 3)), eps=0.0), ValueError, "eps"),
        (dict(dy=np.ones((2, 3)), x=np.ones((2, 3)), eps=-1e-5), ValueError, "eps"),
        (dict(dy=np.ones((2, 3)), x=np.ones((2, 3)), weight=np.ones(2)), ValueError, "weight"),
        (dict(dy=np.ones((1, 3)), x=np.ones((1, 3))), ValueError, "more than 1 value"),
        (dict(dy=np.ones((2, 3)), x=np.ones((2, 3), dtype=np.int64)), TypeError, "float"),
        (dict(dy=np.ones(3), x=np.ones(3)), ValueError, "at least 2 dimensions"),
    ],
)
def test_staged_rejects_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        bnlib.batch_norm_backward_staged(**kwargs)


def test_channel_vector_is_the_callers_array():
    """In-place updates of running statistics must reach the caller's buffers."""
    v = np.zeros(3, np.float32)
    assert _validate.channel_vector(v, 3, "running_mean") is v
    assert _validate.channel_vector(None, 3, "weight") is None


def test_torch_tensors_and_strided_arrays_are_accepted():
    import torch

    x = np.random.default_rng(0).standard_normal((3, 4, 2, 5)).astype(np.float32)
    strided = x.transpose(0, 1, 3, 2)  # not C-contiguous
    expected = bnlib.batch_norm(np.ascontiguousarray(strided), training=True)
    np.testing.assert_array_equal(bnlib.batch_norm(strided, training=True), expected)
    from_torch = bnlib.batch_norm(torch.from_numpy(np.ascontiguousarray(strided)), training=True)
    np.testing.assert_array_equal(from_torch, expected)


def test_momentum_none_only_where_allowed():
    _validate.require_momentum(None, allow_none=True)
    with pytest.raises(TypeError, match=r"momentum must be a number in \[0, 1\], got NoneType"):
        _validate.require_momentum(None)
    with pytest.raises(TypeError, match="momentum must be"):
        _validate.require_momentum(True)
    with pytest.raises(TypeError, match="eps must be a positive number, got bool"):
        _validate.require_eps(True)


def test_torch_tensors_are_recognised_in_one_place():
    """bnlib._validate.is_torch_tensor is the one test for a tensor: every input check and
    the homework checks' output check go through it."""
    import pathlib
    import re

    import torch

    assert _validate.is_torch_tensor(torch.ones(2))
    assert not _validate.is_torch_tensor(np.ones(2))
    np.testing.assert_array_equal(_validate.to_numpy(torch.ones(2, requires_grad=True)), 1)
    root = pathlib.Path(bnlib.__file__).parent
    sources = [p for p in root.rglob("*.py") if p.name != "_validate.py"]
    detects = re.compile(r"""hasattr\(\w+, ["']detach["']\)""")
    assert not [p.name for p in sources if detects.search(p.read_text())]


def test_shaped_arrays_say_what_the_shape_is():
    with pytest.raises(ValueError, match=r"gamma must have shape \(2, 3\), one per \(c, h\), got"):
        _validate.shaped_array(np.ones(6), (2, 3), "gamma", "one per (c, h)")
    with pytest.raises(ValueError, match="; check the layer"):
        _validate.shaped_array(np.ones(2), (3,), "w", "one per channel", "check the layer")
    v = np.ones((2, 3))
    assert _validate.shaped_array(v, (2, 3), "gamma", "") is v
