"""bnbook: the book's own code, beside the library it teaches (``bnlib``).

Not part of bnlib's wheel: ``make setup`` installs it (``pip install -e book``), and a
downloaded chapter installs it from the wheel the build ships with the notebook.

- :mod:`bnbook.style`: the look of every figure (a style context, never a global setting);
- :mod:`bnbook.plots`: Part I's figures, drawn from bnlib's computations, one module per
  kind (:mod:`bnbook.tensor_figures`, :mod:`bnbook.variance_figures`,
  :mod:`bnbook.running_figures`, :mod:`bnbook.backward_figures`), named again in ``plots``;
- :mod:`bnbook.simulate`: batch streams and running statistics for chapters 2–3;
- :mod:`bnbook.widgets`: the explorers (live with a kernel, precomputed on the page);
- :mod:`bnbook.train`, :mod:`bnbook.train_figures`: the digits, the small networks, the
  training loop, and the training chapter's figures (need torch);
- :mod:`bnbook.distributed_jobs`: the jobs the at-scale chapter runs on several processes.
"""
