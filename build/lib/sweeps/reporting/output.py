"""Where the report goes: each file written whole or not at all, and a check before any training that it can be.

Kept apart from sweeps.reporting.build so that ``sweep run`` checks the reports folder without importing TensorFlow.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from sweeps.errors import UsageError


def write_file(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise UsageError(f"{path.parent}: cannot write the report ({exc.strerror})") from None


def check_writable(reports_dir: Path) -> None:
    """Fail before any training when the report could not be written at the end."""
    write_file(reports_dir / ".write-test", "")
    (reports_dir / ".write-test").unlink()
