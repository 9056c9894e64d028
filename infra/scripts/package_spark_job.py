"""Build what the Spark engine's AWS job runs: ``infra/terraform/.build/spark/``.

- ``job.py``: a copy of ``leanops_dagster/engines/spark/job.py``, the job entry point (Glue's
  script, EMR Serverless's ``entryPoint``);
- ``leanops_dagster-<version>-py3-none-any.whl``: the project's wheel (``uv build --wheel``),
  which each Glue run installs with its dependencies (``--additional-python-modules``) and the
  EMR Serverless image installs once (``infra/emr-serverless/Dockerfile``).

Terraform (``modules/spark``, variables ``spark_job_script_path`` / ``spark_job_wheel_path``)
uploads both to ``s3://<warehouse bucket>/spark/``, keeping the wheel's file name (pip reads
the version from it); the Dagster tasks get the same URIs as ``LEANOPS_SPARK_JOB_SCRIPT`` /
``LEANOPS_SPARK_JOB_WHEEL``. Older wheels in the folder are removed, so the folder holds
exactly what the next ``terraform apply`` uploads.

Usage (from the repository root)::

    uv run python infra/scripts/package_spark_job.py            # -> infra/terraform/.build/spark/
    uv run python infra/scripts/package_spark_job.py --output-dir /tmp/spark
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import tomllib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUTPUT = REPO_ROOT / "infra" / "terraform" / ".build" / "spark"
JOB_SCRIPT = REPO_ROOT / "leanops_dagster" / "engines" / "spark" / "job.py"


def wheel_name() -> str:
    """The wheel's file name for the version in pyproject.toml (Terraform's default path)."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    return f"{project['name'].replace('-', '_')}-{project['version']}-py3-none-any.whl"


def build(output_dir: Path = DEFAULT_OUTPUT) -> tuple[Path, Path]:
    """Build the wheel and copy the job script into ``output_dir``; (script, wheel)."""
    uv = shutil.which("uv")
    if uv is None:
        raise SystemExit("uv is not on PATH (https://docs.astral.sh/uv/)")
    output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run(  # nosec B603: fixed argv, no shell
            [uv, "build", "--wheel", "--out-dir", scratch, str(REPO_ROOT)],
            check=True,
            capture_output=True,
            text=True,
        )
        built = Path(scratch) / wheel_name()
        if not built.is_file():
            raise SystemExit(f"uv build made {sorted(Path(scratch).iterdir())}, not {built.name}")
        for old in output_dir.glob("*.whl"):
            old.unlink()
        wheel = Path(shutil.copy2(built, output_dir / built.name))
    script = Path(shutil.copy2(JOB_SCRIPT, output_dir / JOB_SCRIPT.name))
    return script, wheel


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    for path in build(args.output_dir):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
