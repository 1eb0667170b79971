"""A score's mean ± 95 % CI as the pages and the command's last line write it: no figures imported, so ``sweep run``
prints its winner without loading matplotlib."""

from __future__ import annotations

import pandas as pd


def ci(row: pd.Series, name: str) -> str:
    """``mean ± 95 % CI (n)`` of score ``name`` in a trials row; the ± is omitted for a single seed."""
    mean, half, n = row.get(f"{name}_mean"), row.get(f"{name}_ci95"), row.get("n_repeats")
    if mean is None or pd.isna(mean):
        return ""
    plus = f" ± {half:.4f}" if n and n > 1 and pd.notna(half) else ""
    return f"{mean:.4f}{plus} (n={int(n)})"
