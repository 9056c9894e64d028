"""Seed-compatible entry: ``python tools/data_injector/main.py --config tests/configs/X.json``.

The same as ``leanops inject --config ...`` (all options of that command are accepted).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from leanops_dagster.cli.ingest import inject

    inject.main(args=sys.argv[1:], prog_name="data_injector")
