"""How well one scoring of architectures ranks like another, and the files scores live in.

- :mod:`naonet.analysis.correlation`: Kendall's tau, Spearman's rho, pairwise accuracy
  and precision at top-k (``correlate`` gives all of them as a ``CorrelationReport``);
- :mod:`naonet.analysis.scores`: score files (text ``ARCH SCORE`` lines, CSV, a search's
  ``arch_pool`` with its ``arch_pool.perf``), read and written;
- :mod:`naonet.analysis.plots`: the pictures ``nao bench-search`` draws.
"""
