"""The Lambda zip (infra/scripts/package_lambdas.py), the ECS dagster.yaml and the Dockerfile."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from infra_support import MODULES, REPO_ROOT, first, module_blocks

SCRIPT = REPO_ROOT / "infra" / "scripts" / "package_lambdas.py"
DAGSTER_YAML = REPO_ROOT / "infra" / "dagster" / "dagster.yaml"
HANDLERS = [
    "ingestion_lambdas.sqs_processor.handler",
    "ingestion_lambdas.dlq_processor.handler",
    "ingestion_lambdas.circuit_breaker.handler",
]


def _load_script():
    spec = importlib.util.spec_from_file_location("package_lambdas", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def packaging():
    return _load_script()


@pytest.fixture(scope="module")
def built_zip(packaging, tmp_path_factory) -> Path:
    """One real build: the locked powertools wheels (hash-checked) + ingestion_lambdas."""
    return packaging.build(tmp_path_factory.mktemp("zip") / "lambdas.zip")


def test_locked_requirements_pin_powertools_with_hashes(packaging):
    lines = packaging.locked_requirements()
    names = [line.split("==")[0] for line in lines]
    assert "aws-lambda-powertools" in names
    assert "orjson" in names  # the handlers' optional fast JSON codec
    assert not {"boto3", "botocore", "s3transfer"} & set(names)  # the runtime provides them
    assert all("--hash=sha256:" in line for line in lines)


def test_zip_has_the_package_and_powertools_at_its_root(built_zip):
    with zipfile.ZipFile(built_zip) as zf:
        names = set(zf.namelist())
    for handler in HANDLERS:
        assert handler.replace(".", "/") + ".py" in names
    assert "aws_lambda_powertools/__init__.py" in names
    # orjson's compiled module for the functions' runtime and architecture (python3.12, arm64)
    assert "orjson/orjson.cpython-312-aarch64-linux-gnu.so" in names
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    assert not any(n.startswith(("tests/", "leanops_dagster/")) for n in names)


def test_build_is_deterministic(packaging, tmp_path):
    deps = tmp_path / "deps"
    (deps / "somepkg").mkdir(parents=True)
    (deps / "somepkg" / "__init__.py").write_text("VALUE = 1\n")
    first_zip = packaging.build(tmp_path / "a.zip", deps_dir=deps)
    os.utime(deps / "somepkg" / "__init__.py", (0, 0))  # mtimes must not matter
    second_zip = packaging.build(tmp_path / "b.zip", deps_dir=deps)
    assert first_zip.read_bytes() == second_zip.read_bytes()
    with zipfile.ZipFile(first_zip) as zf:
        assert zf.namelist() == sorted(zf.namelist())
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_handlers_import_from_the_zip_alone(built_zip):
    """Each handler imports from the zip (not from the repository or the venv's copy)."""
    code = (
        "import importlib, sys\n"
        f"for name in {HANDLERS!r}:\n"
        "    module = importlib.import_module(name)\n"
        "    assert callable(module.lambda_handler), name\n"
        "    assert module.__file__.startswith(sys.argv[1]), module.__file__\n"
        "import aws_lambda_powertools\n"
        "assert aws_lambda_powertools.__file__.startswith(sys.argv[1])\n"
        # Here the zip's arm64 orjson cannot load: the handlers fall back to the std-lib json.
        "from ingestion_lambdas.common import raw_record\n"
        "assert raw_record.build_raw_record(body='{}', sqs_message_id='m', sent_timestamp=None,"
        " topic='t', ingestion_ts='2026-01-19T00:00:00.000000Z').error_class is None\n"
    )
    env = {**os.environ, "PYTHONPATH": str(built_zip), "AWS_DEFAULT_REGION": "us-east-1"}
    result = subprocess.run(  # fixed argv, no shell
        [sys.executable, "-c", code, str(built_zip)],
        env=env,
        cwd="/",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_terraform_default_zip_path_is_the_scripts_output(packaging):
    root_vars = module_blocks(REPO_ROOT / "infra" / "terraform", "variable")
    default = first(root_vars["lambda_zip_path"]["default"])
    assert (REPO_ROOT / "infra" / "terraform" / default).resolve() == packaging.DEFAULT_OUTPUT


# --- dagster.yaml --------------------------------------------------------------------------------
def _env_refs(node) -> set[str]:
    if isinstance(node, dict):
        refs = {node["env"]} if set(node) == {"env"} else set()
        return refs.union(*(_env_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_env_refs(v) for v in node))
    return set()


def test_dagster_yaml_sections_validate_against_their_classes(monkeypatch):
    from dagster._config import process_config
    from dagster._core.instance.config import dagster_instance_config
    from dagster_aws.ecs import EcsRunLauncher
    from dagster_aws.s3.compute_log_manager import S3ComputeLogManager
    from dagster_postgres import DagsterPostgresStorage

    config = yaml.safe_load(DAGSTER_YAML.read_text())
    for name in _env_refs(config):
        monkeypatch.setenv(name, "5432" if name.endswith("_PORT") else "x")
    dagster_instance_config(str(DAGSTER_YAML.parent), DAGSTER_YAML.name)  # instance schema
    assert config["run_launcher"]["class"] == "EcsRunLauncher"
    for cls, section in (
        (EcsRunLauncher, config["run_launcher"]["config"]),
        (S3ComputeLogManager, config["compute_logs"]["config"]),
        (DagsterPostgresStorage, config["storage"]["postgres"]),
    ):
        result = process_config(cls.config_type(), section)
        assert result.success, (cls.__name__, result.errors)


def test_every_variable_dagster_yaml_reads_is_set_by_the_task_definitions():
    config = yaml.safe_load(DAGSTER_YAML.read_text())
    locals_ = module_blocks(MODULES / "orchestration", "locals")
    provided = set(first(locals_["dagster_environment"]))
    provided |= set(re.findall(r"name = \"([A-Z_]+)\", valueFrom", _orchestration_text()))
    missing = _env_refs(config) - provided
    assert not missing, f"dagster.yaml reads variables no task sets: {sorted(missing)}"
    container = config["run_launcher"]["config"]["container_name"]
    run = [d for d in _run_task_container_names() if d == container]
    assert run, "run_launcher.container_name is not a container of the run task definition"


def _orchestration_text() -> str:
    return (MODULES / "orchestration" / "main.tf").read_text()


def _run_task_container_names() -> list[str]:
    """Containers of the run task definition (family local.run_family, what
    DAGSTER_RUN_TASK_DEFINITION names): aws_ecs_task_definition.dagster names the container of
    each task definition after its key of local.task_definitions."""
    assert re.search(r"\bname\s*=\s*each\.key\b", _orchestration_text())
    definitions = first(module_blocks(MODULES / "orchestration", "locals")["task_definitions"])
    return [key for key, body in definitions.items() if body["family"] == "${local.run_family}"]


def test_dockerfile_installs_the_locked_aws_extra_without_dev_deps():
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert "uv sync --frozen --extra aws --no-dev" in dockerfile
    assert "COPY infra/dagster/dagster.yaml /opt/dagster/dagster_home/dagster.yaml" in dockerfile
    assert "USER 10001" in dockerfile
    orchestration = _orchestration_text()
    assert 'dagster_home = "/opt/dagster/dagster_home"' in orchestration
    assert "/app/workspace.yaml" in orchestration
    # the image's code location is the production definitions, without the local ring
    assert "COPY infra/dagster/workspace.yaml ./workspace.yaml" in dockerfile
    workspace = yaml.safe_load((REPO_ROOT / "infra" / "dagster" / "workspace.yaml").read_text())
    (location,) = workspace["load_from"]
    assert location["python_module"]["module_name"] == "leanops_dagster.definitions"
    assert "COPY tools" not in dockerfile and "--all-extras" not in dockerfile
    assert "--extra local" not in dockerfile  # moto stays out of the production image


def test_moto_belongs_to_the_local_extra_and_the_wheel_ships_no_tools():
    import tomllib

    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    project = pyproject["project"]
    extras = project["optional-dependencies"]

    def has_moto(requirements: list[str]) -> bool:
        return any(re.match(r"moto\b", r) for r in requirements)

    assert not has_moto(project["dependencies"])
    assert [name for name, requirements in extras.items() if has_moto(requirements)] == ["local"]
    wheel = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]
    assert wheel["packages"] == ["leanops_dagster", "ingestion_lambdas"]
    assert "--all-extras" in (REPO_ROOT / "Makefile").read_text()  # make setup: local too
