"""Part I's figures (chapters 1-4 and their appendices), one module per kind:

- :mod:`bnbook.tensor_figures`: the (N, C, H, W) tensor and what each normalization pools
  (chapter 1);
- :mod:`bnbook.variance_figures`: the unbiased-variance pitfall and ε (chapter 2);
- :mod:`bnbook.running_figures`: running statistics, batch-statistic spread, drift
  (chapter 3 and its appendix);
- :mod:`bnbook.backward_figures`: the backward graph and the gradient's projection
  (chapter 4 and its appendix).

Their shared colours and style are in :mod:`bnbook.style`. Each function returns a
``matplotlib.figure.Figure`` and draws nothing it did not compute. The chapters import
them from here (``from bnbook import plots``), so this module names them again.
"""

# Re-exported for the chapters, which use ``plots.<name>``; each lives in the module named.
# bnbook.backward_figures (chapter 4, appendix on the backward pass)
from bnbook.backward_figures import (  # noqa: F401
    backward_graph_figure,
    gradient_projection_figure,
)

# bnbook.running_figures (chapter 3, appendix on running statistics)
from bnbook.running_figures import (  # noqa: F401
    batch_spread_figure,
    drift_figure,
    ema_weights_figure,
    probe_outputs_figure,
    running_stats_figure,
)

# bnbook.tensor_figures (chapter 1)
from bnbook.tensor_figures import (  # noqa: F401
    normalization_pooling_figure,
    pooling_ids,
    tensor_pooling_figure,
)

# bnbook.variance_figures (chapter 2)
from bnbook.variance_figures import (  # noqa: F401
    eps_sweep_figure,
    output_std_vs_eps,
    unbiased_normalization_variance,
    unbiased_pitfall_figure,
)
