"""The one digest data is known by: a file's, a table's with its test file, a folder's, a dataset's, the data a
cluster's nodes are sent. It names the data in the cache, in each run's tags and on arrival at a node."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def fingerprint(parts: Iterable[bytes | str]) -> str:
    """The hex md5 of ``parts`` one after another (text as UTF-8), read as they come: a folder is never held whole."""
    digest = hashlib.md5()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
    return digest.hexdigest()
