"""What the bnlib-against-torch tests share: tolerances, hypothesis strategies, inputs."""

import numpy as np
from hypothesis import strategies as st

TOL = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-10, atol=1e-10)}
GRAD_TOL = {np.float32: dict(rtol=1e-4, atol=1e-4), np.float64: dict(rtol=1e-9, atol=1e-9)}

dtypes = st.sampled_from([np.float32, np.float64])
epsilons = st.sampled_from([1e-5, 1e-3, 1e-1, 1.0, 1e-8])
momenta = st.sampled_from([0.0, 0.1, 0.5, 1.0, 0.01])


@st.composite
def shapes(draw, max_side=5, max_spatial_dims=2, min_values=2):
    """(N, C, *spatial): N ≤ 4, C ≤ 4, up to ``max_spatial_dims`` sides ≤ ``max_side``,
    and at least ``min_values`` values per channel."""
    n = draw(st.integers(1, min(4, max_side)))
    c = draw(st.integers(1, 4))
    spatial = tuple(draw(st.lists(st.integers(1, max_side), max_size=max_spatial_dims)))
    if n * int(np.prod(spatial, dtype=int)) < min_values:
        n += min_values
    return (n, c, *spatial)


def random_input(seed: int, shape, dtype, min_scale: float = 0.1):
    """Values with a per-channel offset and scale, so channels really differ."""
    rng = np.random.default_rng(seed)
    c = shape[1]
    per_channel = (1, c, *([1] * (len(shape) - 2)))
    offset = rng.uniform(-3, 3, size=c).reshape(per_channel)
    scale = rng.uniform(min_scale, 4, size=c).reshape(per_channel)
    return (rng.standard_normal(shape) * scale + offset).astype(dtype)
