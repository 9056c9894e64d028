"""Every Terraform file parses; formatting and `terraform validate` where the binary allows it.

`terraform validate` needs the AWS provider. It runs only when a local provider mirror is
present (``TF_PLUGIN_DIR``, default ``/opt/tf-plugins``), since no provider can be downloaded
here; otherwise the test says why it skipped. `terraform plan` needs AWS credentials and is
never run here (docs/deploy.md says how to run it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from infra_support import ENVIRONMENTS, MODULES, TF_ROOT, first, parse, tf_files, tfvars

TERRAFORM = shutil.which("terraform")
PLUGIN_DIR = Path(os.environ.get("TF_PLUGIN_DIR", "/opt/tf-plugins"))
EXPECTED_MODULES = {
    "messaging",
    "compute",
    "ingestion",
    "catalog",
    "observability",
    "orchestration",
    "s3_bucket",
    "spark",
    "table_maintenance",
    "s3tables",
}


def test_expected_modules_exist():
    assert {p.name for p in MODULES.iterdir() if p.is_dir()} == EXPECTED_MODULES


@pytest.mark.parametrize("path", tf_files(), ids=lambda p: str(p.relative_to(TF_ROOT)))
def test_every_tf_file_parses(path):
    assert parse(path), f"{path} parsed to nothing"


@pytest.mark.parametrize(
    "path",
    sorted(ENVIRONMENTS.glob("*.tfvars*")),
    ids=lambda p: p.name,
)
def test_every_tfvars_file_parses(path):
    values = tfvars(path)
    assert values["environment"]
    assert values["topics"]


def test_required_providers_are_pinned():
    terraform = parse(TF_ROOT / "versions.tf")["terraform"][0]
    aws = first(terraform["required_providers"][0]["aws"])
    assert aws["source"] == "hashicorp/aws"
    assert aws["version"].startswith("~> 5.")
    assert "backend" in terraform and "s3" in terraform["backend"][0]


def _terraform(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}
    return subprocess.run(  # fixed argv, no shell
        [TERRAFORM, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.skipif(TERRAFORM is None, reason="no terraform binary on PATH")
def test_terraform_fmt_is_clean():
    result = _terraform("fmt", "-check", "-recursive", "-diff", ".", cwd=TF_ROOT)
    assert result.returncode == 0, f"run terraform fmt -recursive:\n{result.stdout}"


needs_provider = [
    pytest.mark.skipif(TERRAFORM is None, reason="no terraform binary on PATH"),
    pytest.mark.skipif(
        not (PLUGIN_DIR / "registry.terraform.io" / "hashicorp" / "aws").is_dir(),
        reason=f"no local AWS provider mirror at {PLUGIN_DIR} (providers cannot be downloaded)",
    ),
]


@pytest.fixture(scope="module")
def initialized(tmp_path_factory) -> Path:
    """A copy of infra/terraform, initialized offline from the local provider mirror."""
    work = tmp_path_factory.mktemp("tf") / "terraform"
    shutil.copytree(
        TF_ROOT, work, ignore=shutil.ignore_patterns(".terraform", ".terraform.lock.hcl", ".build")
    )
    # filebase64sha256() of the Lambda zip needs a file; its content does not matter here.
    (work / ".build").mkdir()
    (work / ".build" / "lambdas.zip").write_bytes(b"placeholder")
    # filemd5() of the Spark job's script and zip of wheels (infra/scripts/package_spark_job.py)
    (work / ".build" / "spark").mkdir()
    for name in ("job.py", "leanops_dagster_spark_job-0.1.0.gluewheels.zip"):
        (work / ".build" / "spark" / name).write_bytes(b"placeholder")
    init = _terraform(
        "init", "-backend=false", "-input=false", f"-plugin-dir={PLUGIN_DIR}", cwd=work
    )
    assert init.returncode == 0, init.stdout + init.stderr
    return work


@needs_provider[0]
@needs_provider[1]
def test_terraform_validate(initialized):
    validate = _terraform("validate", "-no-color", cwd=initialized)
    assert validate.returncode == 0, validate.stdout + validate.stderr


@needs_provider[0]
@needs_provider[1]
def test_terraform_test_plans_with_a_mocked_provider(initialized):
    """infra/terraform/tests/*.tftest.hcl: names for dev, and the visibility rule refusing
    120 s / 179 s against a 30 s Lambda (root and messaging module), and the operations
    alarms, dashboard panels, Dagster alert settings and the optional Snowflake settings,
    the Spark engine's Glue job / EMR Serverless application and their settings, with no AWS
    account."""
    result = _terraform("test", "-no-color", cwd=initialized)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "15 passed, 0 failed" in result.stdout, result.stdout
