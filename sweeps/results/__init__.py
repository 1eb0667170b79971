"""A study's results as plain data, read from the stores: trials, repeats, the best checkpoint's scores, and hints
to change the space. Pages and figures are drawn from them by :mod:`sweeps.reporting`."""
