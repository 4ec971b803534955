"""Input validation for bnlib's public functions, in one place.

Bad input gets a clear error that says what was wrong and what to do, never silent garbage.
The public functions (``bnlib.batch_norm``, ``bnlib.BatchNorm2d``, ...) call these first;
the private ``_…`` functions they then call assume checked input.
"""

from __future__ import annotations

import math

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def is_torch_tensor(value) -> bool:
    """Whether ``value`` is a torch tensor (or quacks like one), without importing torch."""
    return hasattr(value, "detach") and hasattr(value, "numpy")


def to_numpy(value) -> np.ndarray:
    """``value`` as a NumPy array; a torch tensor is detached and copied to the CPU first."""
    if is_torch_tensor(value):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def float_array(value, name: str) -> np.ndarray:
    """``value`` as a float32/float64 NumPy array (any shape), or a clear error."""
    array = to_numpy(value)
    if array.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{name} must be a float32 or float64 array, got dtype {array.dtype}; "
            f"convert it first, e.g. {name}.astype(np.float32)"
        )
    return array


def shaped_array(
    value, shape: tuple[int, ...], name: str, what: str, advice: str = ""
) -> np.ndarray | None:
    """A parameter or buffer: ``None``, or a float32/float64 array of exactly ``shape``.

    ``what`` says what the shape is (in the error), ``advice`` what to check. An ndarray
    comes back as the same array, so in-place updates reach the caller.
    """
    if value is None:
        return None
    array = float_array(value, name)
    if array.shape != shape:
        raise ValueError(
            f"{name} must have shape {shape}, {what}, got shape {array.shape}"
            + (f"; {advice}" if advice else "")
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


def require_eps(eps: float, name: str = "eps", allow_zero: bool = False) -> None:
    """ε must be a positive number (or ≥ 0, ``allow_zero``): it keeps √(σ² + ε) from zero."""
    kind = "number >= 0" if allow_zero else "positive number"
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating)):
        raise TypeError(f"{name} must be a {kind}, got {type(eps).__name__}")
    if not (eps >= 0 if allow_zero else eps > 0) or not math.isfinite(eps):
        kind = "finite number >= 0" if allow_zero else "positive finite number"
        raise ValueError(
            f"{name} must be a {kind} (default 1e-5), got {eps}; "
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


def channel_vector(
    v, num_channels: int, name: str, what: str = "one value per channel of the input"
) -> np.ndarray | None:
    """A per-channel parameter or buffer: ``None`` or an array of shape ``(C,)``."""
    return shaped_array(v, (num_channels,), name, what)


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


# --------------------------------------------------------------------------------------
# fold_conv_bn
# --------------------------------------------------------------------------------------

FOLD_ADVICE = "is this batch norm the one right after this layer?"


def layer_weight(conv_w) -> np.ndarray:
    """A convolution's or linear layer's weight: float, at least 2D (output channels first)."""
    weight = float_array(conv_w, "conv_w")
    if weight.ndim < 2:
        raise ValueError(
            "conv_w must have shape (C_out, C_in / groups, *kernel) for a convolution or "
            f"(C_out, C_in) for a linear layer, at least 2 dimensions; got shape {weight.shape}"
        )
    return weight


def output_channel_vector(value, out_channels: int, name: str) -> np.ndarray | None:
    """``None``, or a float array with one value per output channel of the layer."""
    what = f"one value per output channel of the convolution (conv_w.shape[0] = {out_channels})"
    return shaped_array(value, (out_channels,), name, what, FOLD_ADVICE)


def folding_stats(running_mean, running_var, eps: float) -> None:
    """Folding needs the running statistics, a variance ≥ 0 and ``running_var + eps > 0``."""
    if running_mean is None or running_var is None:
        raise ValueError(
            "bn_rm and bn_rv (the running mean and variance) are required: folding uses the "
            "evaluation-mode statistics; a batch norm with track_running_stats=False "
            "normalizes with batch statistics and cannot be folded"
        )
    bad = np.flatnonzero(~(running_var >= 0))  # also catches NaN
    if bad.size:
        raise ValueError(
            "bn_rv is a variance and must be >= 0, but channel(s) "
            f"{bad.tolist()} hold {running_var[bad].tolist()}; the running statistics are "
            "corrupt (check how they were computed or loaded)"
        )
    if np.any(running_var + eps == 0):
        raise ValueError(
            "bn_rv + bn_eps is 0 for some channel, so 1/sqrt(bn_rv + bn_eps) is infinite; "
            "use batch norm's eps > 0"
        )


# --------------------------------------------------------------------------------------
# group_norm and layer_norm
# --------------------------------------------------------------------------------------


def group_count(num_groups, x: np.ndarray) -> int:
    """``num_groups``: an int that divides the channel count of ``x`` (N, C, *)."""
    if isinstance(num_groups, bool) or not isinstance(num_groups, (int, np.integer)):
        raise TypeError(f"num_groups must be an int, got {type(num_groups).__name__}")
    c = x.shape[1]
    if num_groups < 1 or c % num_groups:
        raise ValueError(
            f"num_groups must be a positive divisor of the number of channels C = {c} "
            f"(x has shape {x.shape}), got num_groups={num_groups}; e.g. "
            f"{', '.join(str(d) for d in range(1, c + 1) if c % d == 0)}"
        )
    return int(num_groups)


def trailing_shape(normalized_shape, x: np.ndarray) -> tuple[int, ...]:
    """``normalized_shape`` (an int or ints) as a tuple naming the trailing axes of ``x``."""
    if isinstance(normalized_shape, (int, np.integer)) and not isinstance(normalized_shape, bool):
        normalized_shape = (int(normalized_shape),)
    try:
        shape = tuple(int(s) for s in normalized_shape)
    except (TypeError, ValueError):
        raise TypeError(
            "normalized_shape must be an int or a sequence of ints (the trailing dimensions "
            f"of x to normalize over), got {normalized_shape!r}"
        ) from None
    k = len(shape)
    if k == 0:
        raise ValueError("normalized_shape must name at least one dimension, got ()")
    if k > x.ndim or x.shape[x.ndim - k :] != shape:
        raise ValueError(
            f"normalized_shape={list(shape)} must be the trailing dimensions of x, which has "
            f"shape {x.shape}: expected x of shape (*, {', '.join(map(str, shape))})"
        )
    return shape


# --------------------------------------------------------------------------------------
# batch_renorm and ghost_batch_norm
# --------------------------------------------------------------------------------------


def require_clip(r_max, d_max) -> None:
    """Batch renorm's clips: ``r_max`` ≥ 1 (r lies in [1/r_max, r_max]), ``d_max`` ≥ 0."""
    for name, value, low in (("r_max", r_max, 1.0), ("d_max", d_max, 0.0)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
            raise TypeError(f"{name} must be a number, got {type(value).__name__}")
        if not (value >= low and math.isfinite(value)):
            raise ValueError(
                f"{name} must be a finite number >= {low:g}, got {value}; r is clipped to "
                "[1/r_max, r_max] and d to [-d_max, d_max] (r_max = 1, d_max = 0 is batch norm)"
            )


def ghost_count(ghost_size, x: np.ndarray) -> int:
    """The number of ghost batches: ``ghost_size`` must be an int that divides N, with more
    than one value per channel in each ghost batch (its variance is 0 otherwise)."""
    if isinstance(ghost_size, bool) or not isinstance(ghost_size, (int, np.integer)):
        raise TypeError(
            f"ghost_size must be an int (images per ghost batch), got {type(ghost_size).__name__}"
        )
    n = x.shape[0]
    if ghost_size < 1 or n % ghost_size:
        raise ValueError(
            f"ghost_size must be a positive divisor of the batch size N = {n} (x has shape "
            f"{x.shape}), got ghost_size={ghost_size}; e.g. "
            f"{', '.join(str(d) for d in range(1, n + 1) if n % d == 0)}"
        )
    if ghost_size * (x.size // max(1, n * x.shape[1])) <= 1:
        raise ValueError(
            f"Expected more than 1 value per channel in each ghost batch, got ghost_size="
            f"{ghost_size} on input of size {x.shape}; use ghost_size*H*W > 1"
        )
    return n // int(ghost_size)


def ghost_stats(mean, invstd, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """The per-ghost ``mean`` and ``invstd`` ``(G, C)`` that a ghost forward returned, checked
    against ``x``; returns them and G."""
    mean, invstd = float_array(mean, "mean"), float_array(invstd, "invstd")
    if mean.ndim != 2 or mean.shape[1] != x.shape[1] or invstd.shape != mean.shape:
        raise ValueError(
            f"mean and invstd must have shape (G, C) with C = {x.shape[1]}, as "
            f"ghost_batch_norm_forward returns them, got {mean.shape} and {invstd.shape}"
        )
    g = mean.shape[0]
    if g < 1 or x.shape[0] % g:
        raise ValueError(f"{g} ghost batches do not divide the batch of {x.shape[0]}")
    return mean, invstd, g
