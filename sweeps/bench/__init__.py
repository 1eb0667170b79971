"""The benchmarks, kept outside the sweep path as Optuna keeps its ``benchmarks/``: ``make bench`` (overhead,
pruning, search quality, memory: :mod:`.quality`; R★ and the anytime table in baseline runs: :mod:`.efficiency`)
and ``make bench-scale`` (the framework's own costs as a study grows: :mod:`.scale`, with the simulated trials of
:mod:`.simulation` and the throw-away servers of :mod:`.local_servers`). They start sweeps through the entry point
users call and plug their own training function and callbacks in; nothing under ``sweeps.search`` or
``sweeps.store`` knows it is being measured."""
