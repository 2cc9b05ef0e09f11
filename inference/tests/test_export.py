"""The OpenVINO export's staging folders: what a killed export leaves is removed by the next one."""

from __future__ import annotations

import os
import subprocess
import sys

from inference.export import _remove_abandoned


def test_staging_folders_of_dead_exports_go_and_live_ones_stay(tmp_path):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = tmp_path / f".fp32.partial-{gone.stdout.strip()}"  # a pid that has exited
    alive = tmp_path / f".fp32.partial-{os.getpid()}"  # an export still running
    other = tmp_path / ".int8.partial-1"  # another precision's export is not this one's business
    for folder in (dead, alive, other):
        (folder / "weights").mkdir(parents=True)
    _remove_abandoned(tmp_path, "fp32")
    assert not dead.exists()
    assert alive.exists() and other.exists()
