"""The commands messages and the report print are the ones that run where the user stands."""

from __future__ import annotations

import shutil
from pathlib import Path

from sweeps.next_command import next_command

REPO = Path(__file__).resolve().parents[1]


def test_a_project_of_the_users_is_told_sweep_commands_with_the_flags_of_its_study(tmp_path: Path):
    assert next_command("reproduce", "churn", trial=3, quick=True, engine="kerastuner", root=tmp_path) == \
        "sweep reproduce churn --trial 3 --quick --engine kerastuner"
    assert next_command("run", "churn", root=tmp_path) == "sweep run churn"
    (tmp_path / "Makefile").write_text("all:\n\techo a Makefile of the user's own\n")
    assert next_command("refit", "churn", root=tmp_path) == "sweep refit churn"


def test_this_repository_is_told_make_commands_with_their_variables(tmp_path: Path):
    shutil.copy(REPO / "Makefile", tmp_path / "Makefile")
    assert next_command("reproduce", "fashion_mlp", trial=2, quick=True, engine="kerastuner", root=tmp_path) == \
        "make reproduce SPACE=fashion_mlp TRIAL=2 ENGINE=kerastuner QUICK=1"
    assert next_command("run", "fashion_cnn", root=tmp_path) == "make sweep SPACE=fashion_cnn"
    assert next_command("bench", "fashion_mlp", root=tmp_path) == "make bench BENCH_SPACE=fashion_mlp"
