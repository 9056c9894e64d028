"""Build the Lambda deployment package: ``infra/terraform/.build/lambdas.zip``.

One zip serves the three functions (``sqs_processor``, ``dlq_processor``, ``circuit_breaker``);
Terraform points each function's handler into it. The zip holds, at its root:

- the ``ingestion_lambdas/`` package of this repository (``*.py`` only), and
- ``aws-lambda-powertools`` with its dependencies, and ``orjson`` (the handlers' optional fast
  JSON codec), at the exact versions of ``uv.lock``, installed from wheels whose sha256 must
  match the lock (``--require-hashes``). orjson is a compiled wheel: the one for the functions'
  runtime and architecture (CPython 3.12, manylinux aarch64 = ``arm64``) is installed. On any
  other architecture its import fails and the handlers fall back to the std-lib ``json``
  (same records, slower).

boto3 / botocore / s3transfer are not packaged: the Lambda Python runtime provides them.

The build is deterministic: same sources and lock -> byte-identical zip (sorted entries, fixed
timestamps and permissions, no ``__pycache__``, no installer-specific metadata), so
``source_code_hash`` in Terraform only changes when the code or a locked version does.

Usage (from the repository root)::

    uv run python infra/scripts/package_lambdas.py   # -> infra/terraform/.build/lambdas.zip
    uv run python infra/scripts/package_lambdas.py --output /tmp/lambdas.zip

Needs network access to the package index once (pip or uv downloads the locked wheels); with
``--deps-dir DIR`` an already installed dependency tree is reused and nothing is downloaded.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUTPUT = REPO_ROOT / "infra" / "terraform" / ".build" / "lambdas.zip"
SOURCE_PACKAGE = "ingestion_lambdas"
ROOT_REQUIREMENTS = ("aws-lambda-powertools", "orjson")
# Provided by the AWS Lambda Python runtime.
RUNTIME_PROVIDED = frozenset({"boto3", "botocore", "s3transfer"})
PYTHON_VERSION = "3.12"  # the functions' runtime (modules/compute: runtime = python3.12)
# The functions' architecture (modules/compute: architecture = arm64), for compiled wheels.
UV_PLATFORM = "aarch64-manylinux_2_17"
PIP_PLATFORMS = ("manylinux_2_17_aarch64", "manylinux2014_aarch64")
FIXED_DATE = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o644 << 16
# Installer-specific files that would make two builds differ.
SKIPPED_METADATA = frozenset({"INSTALLER", "REQUESTED", "direct_url.json", "RECORD"})


def _normalize(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def locked_requirements(lock_path: Path = REPO_ROOT / "uv.lock") -> list[str]:
    """``name==version --hash=...`` lines of powertools, orjson and their dependencies."""
    lock = tomllib.loads(lock_path.read_text())
    packages = {_normalize(p["name"]): p for p in lock["package"]}
    wanted: list[str] = []
    stack = [_normalize(name) for name in ROOT_REQUIREMENTS]
    while stack:
        name = stack.pop()
        if name in wanted or name in RUNTIME_PROVIDED:
            continue
        if name not in packages:
            raise SystemExit(f"{name} is not in uv.lock; run `uv lock` first")
        wanted.append(name)
        stack.extend(_normalize(dep["name"]) for dep in packages[name].get("dependencies", []))
    lines = []
    for name in sorted(wanted):
        package = packages[name]
        hashes = [w["hash"] for w in package.get("wheels", [])]
        if not hashes:
            raise SystemExit(f"{name} has no wheel in uv.lock")
        lines.append(
            f"{name}=={package['version']} " + " ".join(f"--hash={h}" for h in sorted(hashes))
        )
    return lines


def install_dependencies(target: Path, requirements: Iterable[str]) -> None:
    """Install the locked wheels into ``target`` with uv (or pip), verifying their hashes."""
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as handle:
        handle.write("\n".join(requirements) + "\n")
        requirements_file = handle.name
    common = ["--no-deps", "--require-hashes", "--only-binary", ":all:", "-r", requirements_file]
    uv = shutil.which("uv")
    if uv:
        command = [
            uv,
            "pip",
            "install",
            "--quiet",
            "--target",
            str(target),
            "--python-version",
            PYTHON_VERSION,
            "--python-platform",
            UV_PLATFORM,
            *common,
        ]
    else:
        command = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--target",
            str(target),
            "--python-version",
            PYTHON_VERSION,
            "--implementation",
            "cp",
            "--abi",
            "cp" + PYTHON_VERSION.replace(".", ""),
            *(arg for platform in PIP_PLATFORMS for arg in ("--platform", platform)),
            *common,
        ]
    try:
        subprocess.run(command, check=True)  # fixed argv, no shell
    finally:
        Path(requirements_file).unlink(missing_ok=True)


def _source_files() -> Iterator[tuple[str, Path]]:
    package = REPO_ROOT / SOURCE_PACKAGE
    for path in sorted(package.rglob("*.py")):
        if "__pycache__" in path.parts or "tests" in path.relative_to(package).parts:
            continue
        yield path.relative_to(REPO_ROOT).as_posix(), path


def _dependency_files(deps_dir: Path) -> Iterator[tuple[str, Path]]:
    for path in sorted(deps_dir.rglob("*")):
        if not path.is_file():
            continue
        relative = path.relative_to(deps_dir)
        if "__pycache__" in relative.parts or path.suffix == ".pyc":
            continue
        if relative.parts[0] == "bin":
            continue
        if relative.parts[0].endswith(".dist-info") and path.name in SKIPPED_METADATA:
            continue
        yield relative.as_posix(), path


def write_zip(output: Path, deps_dir: Path) -> Path:
    """Write the deterministic zip of the sources plus the installed dependencies."""
    entries = dict(_dependency_files(deps_dir))
    for arcname, path in _source_files():
        entries[arcname] = path  # the repository's package wins over anything installed
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_suffix(".zip.tmp")
    with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for arcname in sorted(entries):
            info = zipfile.ZipInfo(arcname, date_time=FIXED_DATE)
            info.external_attr = FILE_MODE
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # unix, whatever the build machine
            zf.writestr(info, entries[arcname].read_bytes(), compresslevel=9)
    temporary.replace(output)
    return output


def build(output: Path = DEFAULT_OUTPUT, deps_dir: Path | None = None) -> Path:
    """Build the zip; installs the locked dependencies unless ``deps_dir`` is given."""
    if deps_dir is not None:
        return write_zip(output, deps_dir)
    with tempfile.TemporaryDirectory(prefix="leanops-lambda-deps-") as tmp:
        install_dependencies(Path(tmp), locked_requirements())
        return write_zip(output, Path(tmp))


def filebase64sha256(path: Path) -> str:
    """The value Terraform's ``filebase64sha256()`` computes (the functions' source_code_hash)."""
    return base64.b64encode(hashlib.sha256(path.read_bytes()).digest()).decode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument(
        "--deps-dir",
        type=Path,
        default=None,
        help="reuse an installed dependency tree instead of installing from uv.lock",
    )
    args = parser.parse_args(argv)
    output = build(args.output, args.deps_dir)
    with zipfile.ZipFile(output) as zf:
        count = len(zf.namelist())
    print(f"{output} ({output.stat().st_size:,} bytes, {count} files)")
    print(f"source_code_hash (filebase64sha256): {filebase64sha256(output)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
