"""What ``sweep init`` writes into a new project folder: a space file, a model builder, a README and a
.gitignore for the stores. Every ``sweep`` command then works there, with its stores, caches and reports in it."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from sweeps.errors import UsageError

# Where each file of the starter goes in the project.
FILES = {"example.yaml": "search_spaces/example.yaml", "models.py": "models.py", "README.md": "README.md",
         "gitignore": ".gitignore"}


def write_project(folder: Path) -> list[Path]:
    """Write the starter files into ``folder`` (made if missing); refused, with nothing written, when any of them
    exists there already. The paths written."""
    targets = {name: folder / place for name, place in FILES.items()}
    present = [str(path.relative_to(folder)) for path in targets.values() if path.exists()]
    if present:
        raise UsageError(f"sweep init: {folder} already has {', '.join(present)}; nothing written (init a new folder, "
                         "or remove them)")
    starter = resources.files(__name__)
    for name, path in targets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(starter.joinpath(name).read_text(encoding="utf-8"), encoding="utf-8")
    return list(targets.values())
