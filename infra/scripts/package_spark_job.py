"""Build what the Spark engine's AWS job runs, and nothing more: ``infra/terraform/.build/spark/``.

The job (``leanops_dagster/engines/spark/job.py``) imports the core ring and ``dagster-pipes``,
never Dagster, dagster-aws, click or rich of the project's own dependencies. So the artifact is:

- ``job.py``: a copy of the entry point (Glue's script, EMR Serverless's ``entryPoint``);
- ``leanops_dagster_spark_job-<version>-py3-none-any.whl``: the modules ``job.py`` imports
  (followed through every ``import`` statement, lazy ones too), with only the requirements
  they import (``pyproject.toml``'s specifiers, ``uv.lock``'s version where it has none), plus
  ``dagster-pipes`` and ``pandas`` (pyspark's ``mapInArrow`` needs it);
- ``requirements-glue.txt`` / ``requirements-emr.txt``: that set resolved for the platform's
  Python (3.11, manylinux x86_64) against ``infra/spark-job/platforms.toml`` (the versions AWS
  documents for Glue 5.1 and EMR 7.12; every other package at its ``uv.lock`` version where
  those allow), minus
  what the platform ships: Glue 5.1 its provided modules (pyarrow, pandas, numpy, boto3, ...)
  and Spark, EMR only its Spark (its Python 3.11 has no libraries of its own);
- ``leanops_dagster_spark_job-<version>.gluewheels.zip``: Glue's "zip of wheels" (``wheels/``
  with the job wheel, a wheel of every package of ``requirements-glue.txt`` and
  ``requirements.txt``), which a Glue run installs with ``--additional-python-modules`` and
  ``--python-modules-installer-option --no-index``: no package index at job start;
- ``emr-wheels/``: the same for the EMR Serverless image (``infra/emr-serverless/Dockerfile``
  installs it with ``pip --no-index``).

The zip and ``emr-wheels/`` need the package index once (``pip download``); ``--no-wheels``
builds only the job wheel and the requirement files (what the job-venv test installs, from the
wheel plus the package index).

Terraform (``modules/spark``, variables ``spark_job_script_path`` / ``spark_job_wheel_path``)
uploads ``job.py`` and the zip to ``s3://<warehouse bucket>/spark/``, keeping the zip's name
(Glue recognises a zip of wheels by its ``.gluewheels.zip`` suffix); the Dagster tasks get the
same URIs as ``LEANOPS_SPARK_JOB_SCRIPT`` / ``LEANOPS_SPARK_JOB_WHEEL``. Older artifacts in the
folder are removed, so it holds exactly what the next ``terraform apply`` uploads.

Usage (from the repository root)::

    uv run python infra/scripts/package_spark_job.py            # -> infra/terraform/.build/spark/
    uv run python infra/scripts/package_spark_job.py --output-dir /tmp/spark --no-wheels
"""

from __future__ import annotations

import argparse
import ast
import importlib.metadata
import importlib.util
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUTPUT = REPO_ROOT / "infra" / "terraform" / ".build" / "spark"
JOB_SCRIPT = REPO_ROOT / "leanops_dagster" / "engines" / "spark" / "job.py"
JOB_MODULE = "leanops_dagster.engines.spark.job"
PLATFORMS_FILE = REPO_ROOT / "infra" / "spark-job" / "platforms.toml"
DISTRIBUTION = "leanops-dagster-spark-job"
#: needed at run time without being imported by the job's modules: pyspark's ``mapInArrow``
#: (the rules' batches) converts through pandas
RUNTIME_EXTRAS = ("pandas",)
#: the platform Python the requirements are resolved for (uv's target triple)
UV_PLATFORM = "x86_64-manylinux_2_28"
FIXED_DATE = (1980, 1, 1, 0, 0, 0)


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    return normalize(re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement).group(1))


def platforms() -> dict[str, dict]:
    """``infra/spark-job/platforms.toml``: per platform, what it ships and its Python."""
    return tomllib.loads(PLATFORMS_FILE.read_text())


def project() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]


def locked_versions() -> dict[str, str]:
    lock = tomllib.loads((REPO_ROOT / "uv.lock").read_text())
    return {normalize(p["name"]): p["version"] for p in lock["package"] if "version" in p}


# --- what the job imports ---------------------------------------------------------------------
def _module_file(name: str) -> Path | None:
    path = REPO_ROOT.joinpath(*name.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    return None


def job_modules(entry: str = JOB_MODULE) -> tuple[dict[str, Path], set[str]]:
    """The project's modules ``entry`` imports, transitively (every import statement, lazy
    ones too, and each module's parent packages), and the top-level names of the other
    packages they import (the standard library left out)."""
    modules: dict[str, Path] = {}
    imported: set[str] = set()
    stack = [entry]
    while stack:
        name = stack.pop()
        if name in modules:
            continue
        path = _module_file(name)
        if path is None:  # ``from package import name`` where name is not a module
            continue
        modules[name] = path
        parts = name.split(".")
        stack.extend(".".join(parts[:i]) for i in range(1, len(parts)))
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.ImportFrom):
                raise SystemExit(f"{path}: relative imports are not followed; use absolute ones")
            for imported_name in names:
                top = imported_name.split(".")[0]
                if top == "leanops_dagster":
                    stack.append(imported_name)
                elif top not in sys.stdlib_module_names and top != "__future__":
                    imported.add(top)
    return modules, imported


def job_requirements() -> list[str]:
    """The job wheel's requirements: the distributions of what its modules import (and
    ``RUNTIME_EXTRAS``), with pyproject.toml's specifier (extras included) or else uv.lock's
    version; the platform's Spark left out."""
    _, imported = job_modules()
    distributions = importlib.metadata.packages_distributions()
    names: set[str] = {normalize(n) for n in RUNTIME_EXTRAS}
    for top in imported:
        if top not in distributions:
            raise SystemExit(f"the job imports {top!r}, which no installed distribution provides")
        names.update(normalize(d) for d in distributions[top])
    spark = {normalize(n) for n in platforms()["glue"]["also_provided"]}
    declared = {requirement_name(r): r for r in project()["dependencies"]}
    for extra in project()["optional-dependencies"].values():
        for requirement in extra:
            declared.setdefault(requirement_name(requirement), requirement)
    locked = locked_versions()
    return [declared.get(name) or f"{name}=={locked[name]}" for name in sorted(names - spark)]


# --- the job wheel ----------------------------------------------------------------------------
def version() -> str:
    return project()["version"]


def wheel_name() -> str:
    return f"{DISTRIBUTION.replace('-', '_')}-{version()}-py3-none-any.whl"


def gluewheels_name() -> str:
    """Terraform's default ``spark_job_wheel_path`` (basename): Glue's zip of wheels."""
    return f"{DISTRIBUTION.replace('-', '_')}-{version()}.gluewheels.zip"


def _uv() -> str:
    uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    if not Path(uv).exists():
        raise SystemExit("uv is not on PATH (https://docs.astral.sh/uv/)")
    return uv


def build_job_wheel(output_dir: Path) -> Path:
    """A wheel of the job's modules only, requiring only ``job_requirements()``."""
    modules, _ = job_modules()
    requirements = job_requirements()
    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch) / "src"
        for path in modules.values():
            target = source / path.relative_to(REPO_ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        deps = "".join(f"    {r!r},\n" for r in requirements).replace("'", '"')
        (source / "pyproject.toml").write_text(
            "[project]\n"
            f'name = "{DISTRIBUTION}"\n'
            f'version = "{version()}"\n'
            'description = "Lean-Ops on Dagster: the Spark engine\'s job and the core modules it '
            'imports (AWS Glue / EMR Serverless)."\n'
            f'requires-python = "{project()["requires-python"]}"\n'
            f"dependencies = [\n{deps}]\n\n"
            '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n\n'
            '[tool.hatch.build.targets.wheel]\npackages = ["leanops_dagster"]\n'
        )
        subprocess.run(  # nosec B603: fixed argv, no shell
            [_uv(), "build", "--wheel", "--out-dir", scratch, str(source)],
            check=True, capture_output=True, text=True,
        )
        built = Path(scratch) / wheel_name()
        if not built.is_file():
            raise SystemExit(f"uv build made {sorted(Path(scratch).glob('*.whl'))}, not {built}")
        output_dir.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy2(built, output_dir / built.name))


# --- the requirements per platform -------------------------------------------------------------
def preferences() -> list[str]:
    """uv.lock's version of every package Glue 5.1 does not ship: preferred, so the job runs
    what CI runs, unless a Glue pin needs another (pydantic 2.14 needs a typing-extensions newer
    than Glue's: the resolution takes the newest pydantic that works with Glue's)."""
    names = {requirement_name(p) for p in platforms()["glue"]["provided"]}
    return [f"{n}=={v}" for n, v in sorted(locked_versions().items()) if n not in names]


def resolve(output_dir: Path) -> dict[str, Path]:
    """``requirements-<platform>.txt``: the job wheel's requirements resolved for the
    platforms' Python with Glue 5.1's documented versions as constraints (both platforms run
    the one set), pinned, minus what each platform ships."""
    config = platforms()
    pythons = {config[p]["python"] for p in ("glue", "emr_serverless")}
    if len(pythons) != 1:
        raise SystemExit(f"one resolution serves both platforms; their Pythons differ: {pythons}")
    with tempfile.TemporaryDirectory() as scratch:
        inputs, pins = Path(scratch) / "job.in", Path(scratch) / "constraints.txt"
        resolved = Path(scratch) / "resolved.txt"
        inputs.write_text("\n".join(job_requirements()) + "\n")
        pins.write_text("\n".join(config["glue"]["provided"]) + "\n")
        resolved.write_text("\n".join(preferences()) + "\n")  # uv keeps an output's pins
        subprocess.run(  # nosec B603: fixed argv, no shell
            [_uv(), "pip", "compile", str(inputs), "--constraint", str(pins),
             "--output-file", str(resolved), "--python-version", pythons.pop(),
             "--python-platform", UV_PLATFORM, "--no-header", "--no-annotate", "--quiet"],
            check=True, capture_output=True, text=True,
        )
        resolved = resolved.read_text()
    pinned = [line.strip() for line in resolved.splitlines()
              if line.strip() and not line.startswith("#")]
    files = {}
    for platform in ("glue", "emr_serverless"):
        shipped = {requirement_name(p) for p in config[platform]["provided"]}
        shipped |= {normalize(n) for n in config[platform]["also_provided"]}
        kept = [line for line in pinned if requirement_name(line) not in shipped]
        path = output_dir / f"requirements-{platform.split('_')[0]}.txt"
        path.write_text(
            f"# {DISTRIBUTION} {version()} on {platform}: built by "
            "infra/scripts/package_spark_job.py from infra/spark-job/platforms.toml\n"
            + "".join(f"{line}\n" for line in kept)
        )
        files[platform] = path
    return files


# --- wheels for the platforms ------------------------------------------------------------------
def _pip() -> list[str]:
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    python3 = shutil.which("python3")
    if python3 and subprocess.run([python3, "-m", "pip", "--version"],  # nosec B603
                                  capture_output=True).returncode == 0:
        return [python3, "-m", "pip"]
    return [_uv(), "tool", "run", "--from", "pip", "pip"]


def download_wheels(requirements: Path, target: Path, platform: str) -> None:
    """The platform's binary wheels of ``requirements`` (pinned, no dependencies of their
    own to resolve: the file is already the closure)."""
    config = platforms()[platform]
    python = config["python"]
    subprocess.run(  # nosec B603: fixed argv, no shell
        [*_pip(), "download", "--quiet", "--disable-pip-version-check", "--no-deps",
         "--only-binary=:all:", "--python-version", python, "--implementation", "cp",
         "--abi", "cp" + python.replace(".", ""),
         *(arg for tag in config["platforms"] for arg in ("--platform", tag)),
         "--dest", str(target), "-r", str(requirements)],
        check=True,
    )


def wheelhouse(target: Path, job_wheel: Path, requirements: Path, platform: str) -> Path:
    """``target`` with the job wheel, the platform's wheels and a ``requirements.txt`` naming
    the job (what ``pip install --no-index --find-links`` installs)."""
    target.mkdir(parents=True, exist_ok=True)
    download_wheels(requirements, target, platform)
    shutil.copy2(job_wheel, target / job_wheel.name)
    lines = [f"{DISTRIBUTION}=={version()}"] + [
        line for line in requirements.read_text().splitlines() if not line.startswith("#")]
    (target / "requirements.txt").write_text("\n".join(lines) + "\n")
    return target


def write_gluewheels_zip(output: Path, wheels: Path) -> Path:
    """Glue's zip of wheels: ``wheels/<file>`` entries, deterministic (sorted, fixed times)."""
    with zipfile.ZipFile(output, "w", compression=zipfile.ZIP_STORED) as zf:
        for path in sorted(wheels.iterdir()):
            info = zipfile.ZipInfo(f"wheels/{path.name}", date_time=FIXED_DATE)
            info.external_attr = 0o644 << 16
            zf.writestr(info, path.read_bytes())
    return output


def build(output_dir: Path = DEFAULT_OUTPUT, *, wheels: bool = True) -> dict[str, Path]:
    """Build the artifact into ``output_dir`` (see the module docstring); what was made."""
    output_dir.mkdir(parents=True, exist_ok=True)
    for old in (*output_dir.glob("*.whl"), *output_dir.glob("*.gluewheels.zip")):
        old.unlink()
    shutil.rmtree(output_dir / "emr-wheels", ignore_errors=True)
    made = {"script": Path(shutil.copy2(JOB_SCRIPT, output_dir / JOB_SCRIPT.name)),
            "wheel": build_job_wheel(output_dir)}
    requirements = resolve(output_dir)
    made |= {f"requirements_{p}": path for p, path in requirements.items()}
    if wheels:
        with tempfile.TemporaryDirectory() as scratch:
            glue = wheelhouse(Path(scratch) / "glue", made["wheel"], requirements["glue"], "glue")
            made["gluewheels"] = write_gluewheels_zip(output_dir / gluewheels_name(), glue)
        made["emr_wheels"] = wheelhouse(
            output_dir / "emr-wheels", made["wheel"], requirements["emr_serverless"],
            "emr_serverless",
        )
    return made


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument(
        "--no-wheels", action="store_true",
        help="only the job wheel and the requirement files (no package index needed for wheels)",
    )
    args = parser.parse_args(argv)
    for path in build(args.output_dir, wheels=not args.no_wheels).values():
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
