"""modules/spark agrees with the Spark launchers (engines/spark/launch.py) and Settings.

- the launcher names Terraform accepts are Settings' and launch.py's;
- every LEANOPS_* variable the module hands the Dagster tasks is a Settings field, and
  orchestration puts them into the task definitions;
- the Glue job is Glue 5.1 with Iceberg, runs the packaged job.py and installs the packaged
  zip of wheels without a package index, as the launcher's own run arguments do; the EMR
  application's release carries the same Spark and Iceberg, equals the job image's base and
  infra/spark-job/platforms.toml's, and the image installs the artifact's wheelhouse;
- the Dagster run role may make exactly the calls dagster-aws's Pipes clients make (read from
  their source), on exactly the job / application, and pass only the job role;
- the job role reaches only the zones' tables, the schemas and its code (read), the Pipes
  prefix, the Glue databases and the PII secret;
- the packaging script builds the zip of wheels Terraform uploads (the job wheel and exactly
  the wheels of its Glue requirements) and copies the job entry point.
"""

from __future__ import annotations

import importlib.util
import re
import typing
import zipfile
from pathlib import Path

import boto3
import pytest
from infra_support import MODULES, REPO_ROOT, TF_ROOT, first, module_blocks, module_text
from test_infra_consistency import _data, _module_calls, _resources

from leanops_dagster.engines.spark import launch
from leanops_dagster.settings import Settings

SPARK = MODULES / "spark"
SCRIPT = REPO_ROOT / "infra" / "scripts" / "package_spark_job.py"
DOCKERFILE = REPO_ROOT / "infra" / "emr-serverless" / "Dockerfile"
PIPES_CLIENTS = Path(importlib.util.find_spec("dagster_aws").origin).parent / "pipes" / "clients"


def _variables() -> dict:
    return module_blocks(SPARK, "variable")


def _locals() -> dict:
    return module_blocks(SPARK, "locals")


def _default(name: str):
    return first(_variables()[name]["default"])


def _statements(document: str) -> dict[str, dict]:
    """sid -> statement of a policy document, dynamic statements included."""
    body = _data(SPARK, "aws_iam_policy_document")[document]
    statements = list(body.get("statement", []))
    for dynamic in body.get("dynamic", []):
        statements.extend(dynamic["statement"]["content"])
    return {first(s["sid"]): s for s in statements}


def _load_script():
    spec = importlib.util.spec_from_file_location("package_spark_job", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- names and settings ---------------------------------------------------------------------
def test_the_launchers_terraform_accepts_are_the_settings_and_the_launch_modules():
    condition = first(first(_variables()["launcher"]["validation"])["condition"])
    accepted = re.findall(r"'(\w+)'", condition)
    literal = typing.get_args(Settings.model_fields["spark_launcher"].annotation)
    assert tuple(accepted) == literal == launch.LAUNCHERS
    root = module_blocks(TF_ROOT, "variable")["spark_launcher"]
    assert first(root["default"]) == Settings.model_fields["spark_launcher"].default == "session"
    assert first(_module_calls(TF_ROOT)["spark"]["launcher"]) == "${var.spark_launcher}"


def test_the_settings_the_module_hands_the_dagster_tasks_are_settings_fields():
    expression = first(_locals()["settings_environment"])
    names = set(re.findall(r"'(LEANOPS_[A-Z_]+)'", expression))
    assert {
        "LEANOPS_SPARK_LAUNCHER",
        "LEANOPS_SPARK_PIPES_BUCKET",
        "LEANOPS_SPARK_PIPES_PREFIX",
        "LEANOPS_SPARK_JOB_SCRIPT",
        "LEANOPS_SPARK_JOB_WHEEL",
        "LEANOPS_SPARK_GLUE_JOB_NAME",
        "LEANOPS_SPARK_EMR_APPLICATION_ID",
        "LEANOPS_SPARK_EMR_JOB_ROLE_ARN",
        "LEANOPS_PII_HASH_KEY_SECRET_ARN",
    } == names
    unknown = {n for n in names if n.removeprefix("LEANOPS_").lower() not in Settings.model_fields}
    assert not unknown, sorted(unknown)
    # every field SparkJobLaunch reads from Settings is one Terraform can set (the job's
    # interpreter is the local pipes_subprocess launcher's only)
    launch_fields = set(re.findall(r"LEANOPS_[A-Z_]+", str(launch.SparkJobLaunch.model_fields)))
    assert launch_fields - {"LEANOPS_AWS_REGION", "LEANOPS_AWS_ENDPOINT_URL"} <= names | {
        "LEANOPS_SPARK_PIPES_POLL_SECONDS", "LEANOPS_SPARK_JOB_PYTHON"
    }
    # the Pipes bucket is the warehouse; the prefix is Settings' default
    assert "'LEANOPS_SPARK_PIPES_BUCKET': '${var.warehouse_bucket_name}'" in expression
    assert _default("pipes_prefix") == Settings.model_fields["spark_pipes_prefix"].default


def test_orchestration_puts_the_spark_settings_into_every_task_definition():
    call = _module_calls(TF_ROOT)["orchestration"]
    assert first(call["spark_environment"]) == "${module.spark.settings_environment}"
    task_environment = first(module_blocks(MODULES / "orchestration", "locals")["task_environment"])
    assert "var.spark_environment" in task_environment
    spark_call = _module_calls(TF_ROOT)["spark"]
    assert first(spark_call["pii_hash_key_secret_arn"]) == (
        "${module.orchestration.pii_hash_key_secret_arn}"
    )
    assert first(spark_call["warehouse_bucket_name"]) == "${module.catalog.warehouse_bucket_name}"


# --- the job definitions ------------------------------------------------------------------------
def test_the_glue_job_is_glue_5_1_with_iceberg_the_packaged_script_and_wheel():
    job = _resources(SPARK, "aws_glue_job")["spark"]
    assert first(job["glue_version"]) == "5.1"
    command = first(job["command"])
    assert (first(command["name"]), first(command["script_location"])) == (
        "glueetl",
        "${local.script_uri}",
    )
    defaults = first(job["default_arguments"])
    assert defaults["--python-modules-installer-option"] == "--no-index"
    # the same three arguments every run sends (launch.glue_job_run)
    run = launch.glue_job_run(
        launch.SparkJobLaunch(
            launcher="glue", glue_job_name="j", pipes_bucket="b", job_wheel="${local.wheel_uri}"
        )
    )
    for name, value in run["Arguments"].items():
        assert defaults[name] == value, name
    assert first(_locals()["script_key"]) == "${local.code_prefix}job.py"
    assert first(_locals()["wheel_key"]) == "${local.code_prefix}${basename(var.job_wheel_path)}"
    assert first(_locals()["job_name"]) == "${var.name_prefix}-spark-engine"
    assert first(job["security_configuration"])  # logs and bookmarks encrypted with the key


def test_the_emr_release_carries_glue_5_1s_spark_and_iceberg_and_is_the_images_base():
    # emr-7.12.0: Spark 3.5.6-amzn-1, Iceberg 1.10.0-amzn-0 (the EMR release guide's history)
    assert _default("emr_release_label") == "emr-7.12.0"
    application = _resources(SPARK, "aws_emrserverless_application")["spark"]
    assert first(application["release_label"]) == "${var.emr_release_label}"
    assert first(application["type"]) == "spark"
    dockerfile = DOCKERFILE.read_text()
    assert f"emr-serverless/spark/{_default('emr_release_label')}:" in dockerfile
    assert f"{launch.EMR_PYTHON} -m pip install" in dockerfile
    assert "COPY emr-wheels/ /tmp/wheels/" in dockerfile
    assert "--no-index --find-links /tmp/wheels" in dockerfile
    assert "-r /tmp/wheels/requirements.txt" in dockerfile
    platforms = _load_script().platforms()
    assert platforms["emr_serverless"]["release"] == _default("emr_release_label")
    assert platforms["glue"]["version"] == first(
        _resources(SPARK, "aws_glue_job")["spark"]["glue_version"])
    assert launch.EMR_PYTHON.endswith(platforms["emr_serverless"]["python"])


# --- IAM ----------------------------------------------------------------------------------------
def _client_calls(path: Path) -> set[str]:
    return set(re.findall(r"self\.(?:_client|client)\.([a-z_]+)\(", path.read_text()))


@pytest.mark.parametrize(
    ("source", "service", "prefix", "sid", "resources"),
    [
        ("glue.py", "glue", "glue", "RunTheGlueJob", ["${local.glue_job_arn}"]),
        (
            "emr_serverless.py",
            "emr-serverless",
            "emr-serverless",
            "RunOnTheEmrServerlessApplication",
            [
                "${aws_emrserverless_application.spark[0].arn}",
                "${aws_emrserverless_application.spark[0].arn}/jobruns/*",
            ],
        ),
    ],
)
def test_the_dagster_run_role_may_make_exactly_the_pipes_clients_calls(
    source, service, prefix, sid, resources
):
    client = boto3.client(service, region_name="us-east-1")
    operations = {
        client.meta.method_to_api_mapping[m] for m in _client_calls(PIPES_CLIENTS / source)
    }
    assert {"StartJobRun", "GetJobRun"} <= operations  # the reading found the calls
    cancel = {"glue": "BatchStopJobRun", "emr-serverless": "CancelJobRun"}[service]
    assert cancel in operations  # cancelling the Dagster run cancels the job
    statement = _statements("launch")[sid]
    granted = set(first(statement["actions"]))
    # EMR Serverless tags a run with Dagster's run id as it starts it: TagResource
    expected = {f"{prefix}:{op}" for op in operations}
    assert granted - expected <= {"emr-serverless:TagResource"}
    assert expected <= granted
    assert first(statement["resources"]) == resources
    assert first(_locals()["glue_job_arn"]).endswith(":job/${local.job_name}")


def test_the_run_role_passes_only_the_job_role_to_its_service():
    statement = _statements("launch")["PassTheJobRoleOnly"]
    assert first(statement["actions"]) == ["iam:PassRole"]
    assert first(statement["resources"]) == ["${aws_iam_role.job[0].arn}"]
    assert first(first(statement["condition"])["variable"]) == "iam:PassedToService"
    policy = _resources(SPARK, "aws_iam_role_policy")["dagster_run_launches_jobs"]
    assert first(policy["role"]) == "${var.dagster_run_role_name}"
    assert first(_module_calls(TF_ROOT)["spark"]["dagster_run_role_name"]) == (
        "${module.orchestration.run_role_name}"
    )


def test_the_job_role_reaches_only_the_tables_schemas_code_pipes_prefix_and_pii_secret():
    statements = _statements("job")
    s3_resources = {
        sid: first(s["resources"])
        for sid, s in statements.items()
        if any(a.startswith("s3:") for a in first(s["actions"]))
    }
    assert s3_resources == {
        "WarehouseBucket": ["${var.warehouse_bucket_arn}"],
        "ZoneTables": "${local.table_objects}",
        "SchemasAndJobCode": "${local.read_objects}",
        "PipesContextAndMessages": ["${local.pipes_objects}"],
    }
    assert first(statements["SchemasAndJobCode"]["actions"]) == ["s3:GetObject"]
    locals_ = _locals()
    assert first(locals_["table_objects"]) == (
        '${[for db in var.glue_database_names : "${var.warehouse_bucket_arn}/${db}.db/*"]}'
    )
    assert first(locals_["pipes_objects"]) == "${var.warehouse_bucket_arn}/${var.pipes_prefix}*"
    assert first(statements["PiiKey"]["resources"]) == ["${var.pii_hash_key_secret_arn}"]
    glue = set(first(statements["GlueZones"]["actions"]))
    assert "glue:DeleteTable" not in glue and "glue:CreateDatabase" not in glue
    assert 'resources = ["*"]' not in module_text(SPARK)


# --- packaging ---------------------------------------------------------------------------------
def test_terraform_uploads_what_the_packaging_script_builds(tmp_path, monkeypatch):
    """The zip of wheels is built from the job wheel and the Glue requirements (the wheel
    downloads are replaced by empty files named after each pinned requirement)."""
    packaging = _load_script()
    root = module_blocks(TF_ROOT, "variable")
    assert first(root["spark_job_wheel_path"]["default"]) == (
        f".build/spark/{packaging.gluewheels_name()}")
    assert packaging.gluewheels_name().endswith(".gluewheels.zip")
    assert first(root["spark_job_script_path"]["default"]) == ".build/spark/job.py"
    assert packaging.DEFAULT_OUTPUT == TF_ROOT / ".build" / "spark"

    def fake_download(requirements, target, platform):
        for line in requirements.read_text().splitlines():
            if line and not line.startswith("#"):
                name, version = line.split("==")
                (target / f"{name}-{version}-{platform}.whl").write_bytes(b"")

    monkeypatch.setattr(packaging, "download_wheels", fake_download)
    (tmp_path / "leanops_dagster-0.0.1-py3-none-any.whl").write_bytes(b"old")
    made = packaging.build(tmp_path)
    assert made["script"].read_bytes() == (
        REPO_ROOT / "leanops_dagster/engines/spark/job.py").read_bytes()
    assert sorted(p.name for p in tmp_path.glob("*.whl")) == [packaging.wheel_name()]
    assert made["gluewheels"].name == packaging.gluewheels_name()
    glue = [line for line in made["requirements_glue"].read_text().splitlines()
            if not line.startswith("#")]
    with zipfile.ZipFile(made["gluewheels"]) as zf:
        names = sorted(zf.namelist())
        listed = zf.read("wheels/requirements.txt").decode().split()
    assert names == sorted(
        ["wheels/requirements.txt", f"wheels/{packaging.wheel_name()}",
         *(f"wheels/{line.replace('==', '-')}-glue.whl" for line in glue)])
    assert listed == [f"{packaging.DISTRIBUTION}=={packaging.version()}", *glue]
    # Glue ships these; the EMR image gets them from the wheelhouse at Glue's versions
    provided = {packaging.requirement_name(p) for p in packaging.platforms()["glue"]["provided"]}
    assert not provided & {packaging.requirement_name(line) for line in glue}
    emr = (made["emr_wheels"] / "requirements.txt").read_text()
    assert "pyarrow==22.0.0" in emr and "dagster-pipes==" in emr and "pyspark" not in emr
    with zipfile.ZipFile(made["wheel"]) as zf:
        assert "leanops_dagster/engines/spark/job.py" in zf.namelist()
        assert "leanops_dagster/engines/spark/launch.py" not in zf.namelist()
