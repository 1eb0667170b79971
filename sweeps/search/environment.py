"""The environment a sweep ran in, logged as artifacts of its MLflow sweep run (``environment/``): the installed
packages with their versions, Python, the OS, TensorFlow's version, build and devices, and the project's uncommitted
diff; and which package versions differ from a sweep's now (``sweep reproduce``).

TensorFlow-free (an import contract keeps the search so): its build is read from the file TensorFlow installs, and
its devices are asked of it only where this process has imported it already (a sweep in one process); a supervisor
of worker processes records the GPUs its driver shows instead.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from sweeps.store.keys import MLFLOW_RUN_ID, PARENT
from sweeps.store.tracking import Tracker

FOLDER = "environment"  # the sweep run's artifact folder
PACKAGES, SYSTEM, DIFF = "packages.json", "system.json", "uncommitted.diff"
TF_DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu", "tensorflow_cpu", "tensorflow-gpu", "tensorflow-macos",
                    "tensorflow-intel", "tf-nightly")
MAX_DIFF = 2_000_000  # characters of the diff kept (a diff of data files is cut)


def packages() -> dict[str, str]:
    """The installed distributions, by name (lower case), with their versions."""
    found = {(d.metadata["Name"] or "").lower(): d.version for d in importlib.metadata.distributions()}
    return dict(sorted((name, version) for name, version in found.items() if name))


def tensorflow(installed: dict[str, str] | None = None) -> dict[str, Any]:
    """TensorFlow's version and build (CUDA, cuDNN) read from its files, and its devices where this process imported
    it already (importing it here would cost seconds and memory, and the supervisor must stay free of it);
    ``installed``: :func:`packages`, when read already (each reading parses every package's metadata)."""
    spec = importlib.util.find_spec("tensorflow")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return {"installed": False}
    folder = Path(next(iter(spec.submodule_search_locations)))
    installed = installed or packages()  # the distribution that installed it, by its known names (not a file scan)
    dist = next((name for name in TF_DISTRIBUTIONS if name in installed), None)
    info: dict[str, Any] = {"installed": True, "distribution": dist, "version": installed.get(dist or ""),
                            "build": _build_info(folder / "python" / "platform" / "build_info.py")}
    tf = sys.modules.get("tensorflow")
    if tf is not None:
        info["devices"] = [f"{d.device_type}:{d.name}" for d in tf.config.list_physical_devices()]
    else:
        info["devices"] = "not asked: this process does not import TensorFlow (worker processes train)"
    return info


def _build_info(path: Path) -> dict[str, Any]:
    """The literal ``build_info`` dict of TensorFlow's generated module (is_cuda_build, cuda_version, …)."""
    try:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "build_info" for t in node.targets):
                value = node.value
                if isinstance(value, ast.Call) and value.args:  # collections.OrderedDict([...])
                    value = value.args[0]
                return dict(ast.literal_eval(value))
    except (OSError, SyntaxError, ValueError, TypeError):
        pass
    return {}


def system(installed: dict[str, str] | None = None) -> dict[str, Any]:
    """Python, the OS and machine, TensorFlow, and the GPUs the driver shows (``installed``: as :func:`tensorflow`)."""
    gpus = Path("/proc/driver/nvidia/gpus")
    return {"python": sys.version, "implementation": platform.python_implementation(),
            "platform": platform.platform(), "machine": platform.machine(), "processor": platform.processor(),
            "cpus": os.cpu_count(), "nvidia_gpus": sorted(p.name for p in gpus.iterdir()) if gpus.is_dir() else [],
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "tensorflow": tensorflow(installed)}


def uncommitted_diff(root: Path) -> str | None:
    """``git diff HEAD`` of the project (tracked files only); None when it is not a git repository."""
    try:
        out = subprocess.run(["git", "-C", str(root), "diff", "HEAD"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout if len(out.stdout) <= MAX_DIFF else out.stdout[:MAX_DIFF] + "\n[cut: the diff is longer]\n"


def log_environment(tracker: Tracker, run_id: str, root: Path) -> None:
    """Log the environment as artifacts of the sweep run ``run_id`` (the diff only when there is one)."""
    diff, installed = uncommitted_diff(root), packages()
    tracker.log_text(run_id, json.dumps(installed, indent=1), f"{FOLDER}/{PACKAGES}")
    tracker.log_text(run_id, json.dumps({**system(installed), "git_repository": diff is not None, "uncommitted": bool(diff)},
                                        indent=1), f"{FOLDER}/{SYSTEM}")
    if diff:
        tracker.log_text(run_id, diff, f"{FOLDER}/{DIFF}")


def sweep_packages(tracker: Tracker, trial_attrs: dict[str, Any]) -> dict[str, str] | None:
    """The package versions the sweep run of a trial (its run's parent) logged; None when it logged none (a sweep
    from before they were logged, a trial without a run)."""
    run_id = trial_attrs.get(MLFLOW_RUN_ID)
    parent = tracker.client.get_run(run_id).data.tags.get(PARENT) if run_id else None
    if not parent or PACKAGES not in tracker.artifact_names(parent, FOLDER):
        return None
    with tempfile.TemporaryDirectory(prefix="environment-") as folder:
        return json.loads((tracker.download(parent, FOLDER, Path(folder)) / PACKAGES).read_text())


def version_differences(then: dict[str, str], now: dict[str, str]) -> list[str]:
    """One line per package whose version differs between the sweep's environment (``then``) and this one."""
    lines = []
    for name in sorted(then.keys() | now.keys()):
        if name not in now:
            lines.append(f"{name}: {then[name]} in the sweep, not installed here")
        elif name not in then:
            lines.append(f"{name}: {now[name]} here, not installed in the sweep")
        elif then[name] != now[name]:
            lines.append(f"{name}: {then[name]} in the sweep, {now[name]} here")
    return lines
