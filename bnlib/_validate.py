"""Input validation for bnlib's public functions, in one place.

Bad input gets a clear error that says what was wrong and what to do, never silent garbage.
The public functions (``bnlib.batch_norm``, ``bnlib.BatchNorm2d``, ...) call these first;
the private ``_…`` functions they then call assume checked input.
"""

from __future__ import annotations

import math

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def to_numpy(value) -> np.ndarray:
    """``value`` as a NumPy array; a torch tensor is detached and copied to the CPU first."""
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def float_array(value, name: str) -> np.ndarray:
    """``value`` as a float32/float64 NumPy array (any shape), or a clear error."""
    array = np.asarray(value)
    if array.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{name} must be a float32 or float64 array, got dtype {array.dtype}; "
            f"convert it first, e.g. {name}.astype(np.float32)"
        )
    return array


def as_input(x, name: str = "input") -> np.ndarray:
    """Return ``x`` as a C-contiguous float32/float64 array of shape ``(N, C, *)``."""
    x = to_numpy(x)
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{name} must be a floating-point array of dtype float32 or float64, "
            f"got dtype {x.dtype}; convert it first, e.g. x.astype(np.float32)"
        )
    if x.ndim < 2:
        raise ValueError(
            f"{name} must have shape (N, C, *) with at least 2 dimensions, "
            f"got shape {x.shape} ({x.ndim}D)"
        )
    return np.ascontiguousarray(x)


def require_eps(eps: float) -> None:
    """ε must be a positive number: it keeps √(σ² + ε) away from zero."""
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating)):
        raise TypeError(f"eps must be a positive number, got {type(eps).__name__}")
    if not eps > 0 or not math.isfinite(eps):
        raise ValueError(
            f"eps must be a positive finite number (default 1e-5), got {eps}; "
            "it is added to the variance under the square root to avoid division by zero"
        )


def require_momentum(momentum: float | None, allow_none: bool = False) -> None:
    """Momentum is the weight of the new batch statistic, a number in [0, 1]."""
    if momentum is None and allow_none:
        return
    if isinstance(momentum, bool) or not isinstance(momentum, (int, float, np.floating)):
        expected = "a number in [0, 1] or None" if allow_none else "a number in [0, 1]"
        raise TypeError(f"momentum must be {expected}, got {type(momentum).__name__}")
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(
            f"momentum must be in [0, 1] (PyTorch's default is 0.1), got {momentum}; "
            "a Keras momentum of 0.99 is PyTorch's 1 - 0.99 = 0.01"
        )


def channel_vector(v, num_channels: int, name: str) -> np.ndarray | None:
    """A per-channel parameter or buffer: ``None`` or an array of shape ``(C,)``."""
    if v is None:
        return None
    v = to_numpy(v)  # the same array for an ndarray, so in-place updates reach the caller
    if v.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be a float32 or float64 array, got dtype {v.dtype}")
    if v.shape != (num_channels,):
        raise ValueError(
            f"{name} must have shape ({num_channels},), one value per channel of the "
            f"input, got shape {v.shape}"
        )
    return v


def require_running_stats(running_mean, running_var) -> None:
    """Evaluation mode normalizes with the running statistics, so both must be given."""
    if running_mean is None or running_var is None:
        raise ValueError(
            "running_mean and running_var must be given in evaluation mode "
            "(training=False normalizes with them); pass training=True to use batch statistics"
        )


def require_batch_size(
    x: np.ndarray, advice: str = ", or normalize with running statistics (training=False)"
) -> None:
    """Batch statistics need at least two values per channel, or the variance is 0."""
    if x.size // x.shape[1] <= 1:
        raise ValueError(
            "Expected more than 1 value per channel when training, got input size "
            f"{x.shape}; use a batch with N*H*W > 1{advice}"
        )


def backward_inputs(dy, x, weight, eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The checks every backward makes: ``dy`` (in ``x``'s dtype), ``x`` and ``weight``."""
    x = as_input(x, "x")
    dy = as_input(dy, "dy")
    if dy.shape != x.shape:
        raise ValueError(f"dy must have the shape of x {x.shape}, got {dy.shape}")
    weight = channel_vector(weight, x.shape[1], "weight")
    require_eps(eps)
    return dy.astype(x.dtype, copy=False), x, weight


# --------------------------------------------------------------------------------------
# BatchNorm2d
# --------------------------------------------------------------------------------------


def channel_count(num_features) -> int:
    """``num_features``, the number of channels C: a positive int."""
    if isinstance(num_features, bool) or not isinstance(num_features, (int, np.integer)):
        raise TypeError(
            f"num_features must be an int (the number of channels C), "
            f"got {type(num_features).__name__}"
        )
    if num_features < 1:
        raise ValueError(
            f"num_features must be at least 1 (the number of channels C), got {num_features}"
        )
    return int(num_features)


def image_input(x, num_features: int) -> np.ndarray:
    """A module's input: :func:`as_input`, 4D ``(N, C, H, W)``, with ``num_features`` channels."""
    x = as_input(x)
    if x.ndim != 4:
        raise ValueError(f"expected 4D input (N, C, H, W) (got {x.ndim}D input)")
    if x.shape[1] != num_features:
        raise ValueError(
            f"expected input with {num_features} channels (num_features), "
            f"got input of shape {x.shape} with {x.shape[1]} channels"
        )
    return x


def output_gradient(dy, x: np.ndarray) -> np.ndarray:
    """``dy`` for a module's backward: shaped like the last forward's input, in its dtype."""
    dy = as_input(dy, "dy")
    if dy.shape != x.shape:
        raise ValueError(
            f"dy must have the shape of the last forward's output {x.shape}, got {dy.shape}"
        )
    return dy.astype(x.dtype, copy=False)


def state_arrays(state_dict, expected: list[str], num_features: int, owner: str) -> dict:
    """The entries of a state dict as NumPy arrays, checked before anything is loaded.

    Keys must be exactly ``expected``; parameters and buffers float of shape (C,);
    ``num_batches_tracked`` an integer scalar.
    """
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    if missing or unexpected:
        raise KeyError(
            f"Error(s) in loading state_dict for {owner}: missing keys {missing}, "
            f"unexpected keys {unexpected}"
        )
    arrays = {k: to_numpy(v) for k, v in state_dict.items()}
    for key in expected:
        value = arrays[key]
        if key == "num_batches_tracked":
            if value.shape != () or value.dtype.kind not in "iu":
                raise ValueError(
                    f"num_batches_tracked must be an integer scalar, got shape "
                    f"{value.shape} and dtype {value.dtype}"
                )
            continue
        if value.shape != (num_features,):
            raise ValueError(
                f"size mismatch for {key}: copying a param with shape {value.shape}, "
                f"the shape in the current model is ({num_features},)"
            )
        if value.dtype.kind != "f":
            raise TypeError(f"{key} must be floating point, got dtype {value.dtype}")
    return arrays
