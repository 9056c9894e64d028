"""A fresh or broken LEANOPS_HOME: concurrent first commands, repair hints, unknown topics."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from leanops_dagster.cli import main
from leanops_dagster.instance import BrokenDagsterHome, get_instance
from leanops_dagster.pipeline.layout import TopicTables
from leanops_dagster.settings import REPO_ROOT
from tests.dagster.conftest import append_raw, event, raw_row

CONCURRENT_RUNS = 3


def test_concurrent_first_runs_on_a_fresh_home_write_each_row_once(settings, registry, catalog):
    """N `leanops run` processes started together on a home with no Dagster instance and no
    Standardized/Curated tables yet: every run exits 0, every row is stored once."""
    registry.deploy("events")
    rows = [raw_row(f"m{i}", event(f"k{i % 250}", minutes=i % 50)) for i in range(300)]
    rows.append(raw_row("bad", "{oops"))
    append_raw(catalog, rows)
    assert not settings.dagster_home.exists()

    env = {**os.environ, "LEANOPS_HOME": str(settings.home)}
    leanops = [str(Path(sys.executable).with_name("leanops"))]  # the installed command
    runs = [
        subprocess.Popen(
            [*leanops, "run", "--topic", "events"], env=env, cwd=REPO_ROOT,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for _ in range(CONCURRENT_RUNS)
    ]
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    assert [run.returncode for run in runs] == [0] * CONCURRENT_RUNS, "\n".join(outputs)

    tables = TopicTables("events")
    standardized = catalog.load_table(tables.standardized).scan().to_arrow()
    assert standardized.num_rows == 300
    assert len(set(standardized["message_id"].to_pylist())) == 300
    curated = catalog.load_table(tables.curated).scan().to_arrow()
    assert sorted(curated["idempotency_key"].to_pylist()) == sorted(f"k{i}" for i in range(250))
    parse_errors = catalog.load_table(tables.parse_errors).scan().to_arrow()
    assert parse_errors["message_id"].to_pylist() == ["bad"]

    report = subprocess.run(
        [*leanops, "report", "--topic", "events", "--json"], env=env, cwd=REPO_ROOT,
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert report.returncode == 0, report.stdout + report.stderr
    equations = {e["layer"]: e for e in json.loads(report.stdout)}
    assert equations["post-RAW"]["right"]["standardized"] == 300
    assert equations["curated"]["right"]["superseded"] == 50
    assert all(e["balanced"] for e in equations.values())


def test_a_broken_home_is_refused_with_a_one_line_repair_hint(settings, registry):
    get_instance(settings)  # a healthy home first
    runs_db = settings.dagster_home / "history" / "runs.db"
    with sqlite3.connect(runs_db) as db:  # what two racing migrations left behind
        db.execute("INSERT INTO alembic_version (version_num) VALUES ('0000deadbeef')")
    with pytest.raises(BrokenDagsterHome, match="more than one head"):
        get_instance(settings)

    registry.deploy("events")
    ran = CliRunner().invoke(main, ["run", "--topic", "events"])
    assert ran.exit_code == 1
    message = ran.output.strip()
    assert "\n" not in message and "Traceback" not in message
    assert f"the Dagster home {settings.dagster_home} is broken" in message
    assert f"mv {settings.dagster_home} {settings.dagster_home}.broken" in message


def test_report_of_a_topic_with_nothing_says_so_and_fails(settings, catalog):
    runner = CliRunner()
    nothing = runner.invoke(main, ["report", "--topic", "orders"])
    assert nothing.exit_code == 1
    assert "no deployed schema, no tables and no messages sent" in nothing.output
    assert "0 =" not in nothing.output

    append_raw(catalog, [raw_row("m1", event("k1"), topic="orders")], topic="orders")
    buffered = runner.invoke(main, ["report", "--topic", "orders", "--json"])
    assert buffered.exit_code == 0, buffered.output  # RAW waiting for its schema is a state
    post_raw = {e["layer"]: e for e in json.loads(buffered.output)}["post-RAW"]
    assert post_raw["pending"] == 1
