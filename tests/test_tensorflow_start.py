"""A command's stderr holds its own lines: TensorFlow's start-up notices, which no setting silences in 2.21, are
dropped; anything else printed while TensorFlow imports is kept."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sweeps.console.tensorflow_start import notices_dropped

# As TensorFlow 2.21's native libraries print them, twice a process, before the first trial of every `sweep run`.
NOTICES = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
           "I0000 00:00:1796688035.860124   19563 port.cc:153] oneDNN custom operations are on. You may see slightly "
           "different numerical results due to floating-point round-off errors from different computation orders. To "
           "turn them off, set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`.\n")


def test_the_notices_are_dropped_and_everything_else_printed_meanwhile_is_kept(capfd):
    with notices_dropped():
        os.write(2, NOTICES.encode())
        os.write(2, b"E0000 00:00:1796688035.9 19563 cuda_dnn.cc:8310] Unable to register cuDNN factory\n")
        os.write(2, NOTICES.encode())
        os.write(2, b"a line of its own")  # not ended: kept as it is
    assert capfd.readouterr().err == ("E0000 00:00:1796688035.9 19563 cuda_dnn.cc:8310] Unable to register cuDNN "
                                      "factory\na line of its own")


@pytest.mark.slow  # a process of its own imports TensorFlow: 5 s of CPU
def test_a_process_of_the_command_line_imports_tensorflow_without_a_word_on_stderr():
    code = "import sweeps.cli, tensorflow, sys; print('imported', tensorflow.__version__, file=sys.stderr)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stderr.startswith("imported 2.") and done.stderr.count("\n") == 1, done.stderr
