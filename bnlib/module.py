"""``BatchNorm2d``: the stateful module, mirroring ``torch.nn.BatchNorm2d`` in NumPy."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from bnlib import kernels
from bnlib._validate import (
    channel_count,
    image_input,
    output_gradient,
    require_batch_size,
    require_eps,
    require_momentum,
    state_arrays,
)

# What to do about a batch with one value per channel, by track_running_stats
ONE_VALUE_ADVICE = {
    True: ", or call .eval() to normalize with the running statistics",
    False: " (track_running_stats=False: eval mode uses batch statistics too)",
}


class BatchNorm2d:
    r"""Batch normalization over a 4D input ``(N, C, H, W)``, as ``torch.nn.BatchNorm2d``.

    .. math:: y = \frac{x - \mathrm{E}[x]}{\sqrt{\mathrm{Var}[x] + \varepsilon}}\,\gamma + \beta

    In training mode the mean and biased variance of the batch normalize, and the
    running statistics move towards them::

        running = (1 − momentum)·running + momentum·batch_stat     (unbiased variance)

    With ``momentum=None`` the running statistics are the cumulative average of all
    batches seen (momentum = 1/num_batches_tracked). In evaluation mode the running
    statistics normalize, unless ``track_running_stats=False`` (then there are none, and
    batch statistics are used in both modes).

    Parameters are float32, like torch's defaults; a float64 input computes in float64.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
    ) -> None:
        self.num_features = channel_count(num_features)
        require_eps(eps)
        require_momentum(momentum, allow_none=True)
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        self.training = True
        c = self.num_features
        self.weight = np.ones(c, np.float32) if affine else None
        self.bias = np.zeros(c, np.float32) if affine else None
        self.grad_weight: np.ndarray | None = None
        self.grad_bias: np.ndarray | None = None
        if track_running_stats:
            self.running_mean = np.zeros(c, np.float32)
            self.running_var = np.ones(c, np.float32)
            self.num_batches_tracked = 0
        else:
            self.running_mean = self.running_var = None
            self.num_batches_tracked = None
        # what backward() needs from the last forward, as torch's autograd keeps it: the
        # input, the mean and inverse standard deviation that normalized it (float64), and
        # whether those were the batch's (training) or the running ones (evaluation)
        self._saved_x: np.ndarray | None = None
        self._saved_mean: np.ndarray | None = None
        self._saved_invstd: np.ndarray | None = None
        self._saved_batch_stats = True

    def __repr__(self) -> str:
        return (
            f"BatchNorm2d({self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, track_running_stats={self.track_running_stats})"
        )

    # -- modes ---------------------------------------------------------------------------

    def train(self, mode: bool = True) -> BatchNorm2d:
        """Training mode: normalize with batch statistics and update the running ones."""
        self.training = bool(mode)
        return self

    def eval(self) -> BatchNorm2d:
        """Evaluation mode: normalize with the running statistics."""
        return self.train(False)

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1, no batches tracked."""
        if self.track_running_stats:
            self.running_mean[...] = 0
            self.running_var[...] = 1
            self.num_batches_tracked = 0

    # -- forward and backward ------------------------------------------------------------

    def __call__(self, x) -> np.ndarray:
        return self.forward(x)

    def forward(self, x) -> np.ndarray:
        """Normalize ``x`` (N, C, H, W); training updates the running stats."""
        x = image_input(x, self.num_features)
        use_batch_stats = self.training or not self.track_running_stats
        if use_batch_stats:
            require_batch_size(x, ONE_VALUE_ADVICE[self.track_running_stats])
        momentum = 0.0  # the running statistics move only in training mode
        if self.training and self.track_running_stats:
            self.num_batches_tracked += 1
            momentum = self.momentum
            if momentum is None:  # cumulative moving average
                momentum = 1.0 / self.num_batches_tracked
        y, mean, invstd = kernels.native_batch_norm(
            x,
            self.weight,
            self.bias,
            self.running_mean,
            self.running_var,
            use_batch_stats,
            momentum,
            self.eps,
        )
        self._saved_x, self._saved_mean, self._saved_invstd = x, mean, invstd
        self._saved_batch_stats = use_batch_stats
        return y

    def backward(self, dy) -> np.ndarray:
        """Gradient of the loss with respect to the last forward's input.

        Stores ``grad_weight`` = Σ dy·x̂ and ``grad_bias`` = Σ dy when ``affine``. With batch
        statistics the compact formula applies; with running statistics (eval mode) they
        are constants and dx = γ·dy/√(running_var + ε). Either way the backward takes the
        forward's input, mean and inverse standard deviation, as torch's does.

        Like torch's autograd, the module keeps a reference to the forward's input rather
        than a copy: do not modify that array in place before calling ``backward``.
        """
        x = self._saved_x
        if x is None:
            raise RuntimeError(
                "backward() called before forward(): call the module on an input first"
            )
        dy = output_gradient(dy, x)
        dx, dweight, dbias = kernels.backward(
            dy, x, self._saved_mean, self._saved_invstd, self.weight, self._saved_batch_stats
        )
        if self.affine:  # each in its parameter's dtype, as torch's autograd leaves them
            self.grad_weight = dweight.astype(self.weight.dtype, copy=False)
            self.grad_bias = dbias.astype(self.bias.dtype, copy=False)
        return dx

    # -- state -----------------------------------------------------------------------------

    def state_dict(self) -> OrderedDict:
        """Parameters and buffers under torch's keys (copies, as NumPy arrays)."""
        state = OrderedDict()
        if self.affine:
            state["weight"] = self.weight.copy()
            state["bias"] = self.bias.copy()
        if self.track_running_stats:
            state["running_mean"] = self.running_mean.copy()
            state["running_var"] = self.running_var.copy()
            state["num_batches_tracked"] = np.array(self.num_batches_tracked, dtype=np.int64)
        return state

    def load_state_dict(self, state_dict) -> None:
        """Load a state dict from :meth:`state_dict` or from ``torch_module.state_dict()``."""
        expected = list(self.state_dict().keys())
        arrays = state_arrays(state_dict, expected, self.num_features, repr(self))
        for key in expected:
            if key == "num_batches_tracked":
                self.num_batches_tracked = int(arrays[key])
            else:
                setattr(self, key, np.array(arrays[key], copy=True))

    @classmethod
    def from_torch(cls, module) -> BatchNorm2d:
        """A bnlib copy of a ``torch.nn.BatchNorm2d``: settings, state and mode."""
        bn = cls(
            module.num_features,
            eps=module.eps,
            momentum=module.momentum,
            affine=module.affine,
            track_running_stats=module.track_running_stats,
        )
        bn.load_state_dict(module.state_dict())
        bn.train(module.training)
        return bn
