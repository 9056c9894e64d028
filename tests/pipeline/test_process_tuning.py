"""Process tuning of the layer runs (``leanops_dagster.pipeline.process_tuning``)."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import ctypes
from leanops_dagster.pipeline.process_tuning import prepare_for_increments
from leanops_dagster.settings import get_settings
libc = ctypes.CDLL(None)
libc.prctl(41, 0, 0, 0, 0)  # the flag is inherited: start from "enabled" whatever the parent did
before = libc.prctl(42, 0, 0, 0, 0)  # PR_GET_THP_DISABLE
prepare_for_increments(disable_thp=get_settings().disable_thp)  # as the rings hand it on
print(before, libc.prctl(42, 0, 0, 0, 0))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux only")
@pytest.mark.parametrize(("setting", "expected"), [("true", "0 1"), ("false", "0 0")])
def test_layer_runs_turn_transparent_huge_pages_off_unless_told_not_to(setting, expected):
    """In a child process: the flag is per process (and inherited), so not in this one."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True,
        env={"LEANOPS_DISABLE_THP": setting, "PATH": ""},
    )
    assert out.stdout.split("\n")[0] == expected
