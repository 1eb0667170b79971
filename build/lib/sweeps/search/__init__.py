"""Deciding and running trials: the space format, samplers and pruners, the study, the objective, the sweep driver, its worker processes and engines."""
