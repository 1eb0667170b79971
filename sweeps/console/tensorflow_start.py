"""TensorFlow's start-up notices kept off a command's stderr, which holds its own lines and at most one ``error:``.

TensorFlow 2.21 logs through Abseil before anything calls ``absl::InitializeLog()``, so its native libraries print
"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR" and oneDNN's INFO note
once each, twice a process, whatever ``TF_CPP_MIN_LOG_LEVEL`` says: four lines before every `sweep run`'s first
trial, and before a refusal's one line. No setting turns them off (tensorflow/tensorflow#102212, a closed pull
request, proposed the call). While TensorFlow is imported, its native stderr goes to a file; what the import
printed is written back, less those notices. Installed by the command line (:mod:`sweeps.cli`); the Python API
leaves stderr as TensorFlow has it.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Sequence
from types import ModuleType

_NOTICES = re.compile(r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$"
                      r"|^I\d{4} [\d:. ]+\d+ port\.cc:\d+\] oneDNN custom operations are on\.")


@contextlib.contextmanager
def notices_dropped() -> Iterator[None]:
    """Run the body with file descriptor 2 caught; then write what it caught back to stderr, less the notices."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all (a daemon's): nothing to keep clean
        yield
        return
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            kept = [line for line in caught.read().decode(errors="replace").splitlines(keepends=True)
                    if not _NOTICES.match(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


class _QuietLoader(importlib.abc.Loader):
    """TensorFlow's own loader, its module run inside :func:`notices_dropped`."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        with notices_dropped():
            self.loader.exec_module(module)

    def __getattr__(self, name: str) -> object:  # the rest of the loader's API (resources, is_package…) is its own
        return getattr(self.loader, name)


class _QuietTensorFlow(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` as the other finders do and hands it :class:`_QuietLoader`; every other module is theirs."""

    def find_spec(self, name: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if name != "tensorflow":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def install() -> None:
    """Quiet TensorFlow's start in this process and its children, before it is imported: its C++ INFO and WARNING
    lines off unless ``TF_CPP_MIN_LOG_LEVEL`` asks for them, and the notices no setting silences dropped."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietTensorFlow) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlow())
