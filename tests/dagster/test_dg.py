"""Dagster's `dg` command line on the project (pyproject.toml's ``[tool.dg]``): `dg check defs`
passes, `dg list defs` shows every definition of the laptop's code location, and `leanops dev`
starts the UI through `dg dev` (not the superseded `dagster dev`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib

from click.testing import CliRunner

from leanops_dagster.cli import main as leanops
from leanops_dagster.settings import REPO_ROOT

DG = [sys.executable, "-m", "dagster_dg_cli.cli"]


def _dg(*args: str, home) -> subprocess.CompletedProcess[str]:
    """`dg` as a user runs it in the repository (its venv active), on a fresh LEANOPS_HOME."""
    env = {**os.environ, "LEANOPS_HOME": str(home), "VIRTUAL_ENV": sys.prefix}
    env.pop("DAGSTER_HOME", None)
    return subprocess.run(  # nosec B603: fixed argv
        [*DG, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600,
    )


def test_pyproject_points_dg_at_the_local_definitions_of_workspace_yaml():
    import yaml

    dg_config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["dg"]
    (location,) = yaml.safe_load((REPO_ROOT / "workspace.yaml").read_text())["load_from"]
    assert dg_config["directory_type"] == "project"
    assert dg_config["project"]["root_module"] == "leanops_dagster"
    assert (dg_config["project"]["code_location_target_module"]
            == location["python_module"]["module_name"])
    assert dg_config["project"]["code_location_name"] == location["python_module"]["location_name"]


def test_dg_check_defs_passes(tmp_path):
    result = _dg("check", "defs", home=tmp_path / "home")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All definitions loaded successfully." in result.stdout + result.stderr


def test_dg_list_defs_shows_every_asset_check_sensor_schedule_and_job(settings):
    from leanops_dagster.local.definitions import build_local_definitions

    result = _dg("list", "defs", "--json", home=settings.home)
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)

    defs = build_local_definitions(settings)
    graph = defs.resolve_asset_graph()
    expected_assets = {key.to_user_string() for key in graph.get_all_asset_keys()}
    expected_checks = {
        f"{key.asset_key.to_user_string()}:{key.name}" for key in graph.asset_check_keys
    }
    expected_jobs = {job.name for job in defs.resolve_all_job_defs()
                     if not job.name.startswith("__")}
    assert {a["asset_key"] for a in listed["assets"]} == expected_assets
    assert {c["key"] for c in listed["asset_checks"]} == expected_checks
    assert {s["name"] for s in listed["sensors"]} == {s.name for s in defs.sensors}
    assert {s["name"] for s in listed["schedules"]} == {s.name for s in defs.schedules}
    assert {j["name"] for j in listed["jobs"]} == expected_jobs
    # the laptop's code location: what the README's UI tour names is there
    assert {"raw/staging", "standardized/records", "curated/records"} <= expected_assets
    assert {"topic_pipeline", "accountability_checks", "dlq_replay_job"} <= expected_jobs
    assert {"schema_gate_sensor", "raw_snapshot_sensor"} <= {s.name for s in defs.sensors}


def test_leanops_dev_runs_dg_dev_on_the_project_with_the_local_dagster_home(
    settings, monkeypatch
):
    calls = []

    def fake_exec(file, argv, env):
        calls.append((file, argv, env))
        raise SystemExit(0)

    monkeypatch.setattr(os, "execvpe", fake_exec)
    result = CliRunner().invoke(leanops, ["dev", "--port", "3333"])
    assert result.exit_code == 0, result.output
    ((file, argv, env),) = calls
    assert file == sys.executable
    assert argv == [*DG, "dev", "--target-path", str(REPO_ROOT), "--port", "3333"]
    assert env["DAGSTER_HOME"] == str(settings.dagster_home)
    assert (settings.dagster_home / "dagster.yaml").is_file()
    assert "dagster dev" not in " ".join(argv)


def _start_ui_stubbed(monkeypatch, argv: list[str]) -> tuple[list[dict], list[str]]:
    """Run a UI command line in this process up to where it would start the webserver and
    daemon (``dagster._cli.dev.dev_command_impl``, which both `dg dev` and `dagster dev`
    call); what it was given (with its workspace file's text) and the warnings on the way."""
    import warnings

    import yaml

    started: list[dict] = []

    def impl(*args, **kwargs):
        opts = kwargs.get("workspace_opts") or args[8]
        (workspace,) = opts.workspace
        with open(workspace) as handle:
            started.append({**kwargs, "workspace": yaml.safe_load(handle)})

    monkeypatch.setattr("dagster._cli.dev.dev_command_impl", impl)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if argv[:3] == DG:
            from dagster_dg_cli.cli import cli as dg_cli

            dg_cli.main(args=argv[3:], standalone_mode=False)
        else:
            from dagster._cli import cli as dagster_cli

            dagster_cli.main(args=argv[3:], standalone_mode=False)
    return started, [f"{w.category.__name__}: {w.message}" for w in caught]


def test_leanops_dev_starts_the_ui_without_a_supersession_warning(settings, monkeypatch):
    commands = []

    def exec_in_process(file, argv, env):
        monkeypatch.setattr(os, "environ", env)
        commands.append(argv)
        raise SystemExit(0)

    monkeypatch.setattr(os, "execvpe", exec_in_process)
    assert CliRunner().invoke(leanops, ["dev"]).exit_code == 0
    monkeypatch.chdir("/")  # dg finds the project from --target-path, not from the cwd
    started, warned = _start_ui_stubbed(monkeypatch, commands[0])
    (ui,) = started
    (location,) = ui["workspace"]["load_from"]
    assert location["python_module"]["module_name"] == "leanops_dagster.local.definitions"
    assert location["python_module"]["location_name"] == "leanops"
    assert not [w for w in warned if "Supersession" in w or "dg dev" in w], warned

    # the control: the command `leanops dev` ran before (`dagster dev -w workspace.yaml`)
    old = [sys.executable, "-m", "dagster", "dev", "-w", str(REPO_ROOT / "workspace.yaml")]
    _, warned = _start_ui_stubbed(monkeypatch, old)
    assert [w for w in warned if w.startswith("SupersessionWarning") and "dg dev" in w], warned

