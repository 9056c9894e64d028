"""Seed-compatible entry: ``python tools/data_injector/main.py --config tests/configs/X.json``.

The same as ``leanops inject --config ...`` (all options of that command are accepted). The
injector itself lives in ``leanops_dagster.local.injector``; this script only forwards to the
CLI, so it needs the project installed (``make setup``; ``python3 -m uv run python ...``).
"""

from __future__ import annotations

import sys

from leanops_dagster.cli.ingest import inject

if __name__ == "__main__":
    inject.main(args=sys.argv[1:], prog_name="data_injector")
