"""Security scanners: checkov over infra/terraform (zero failed checks, every skip with its reason
inline) and bandit over the Python that runs in AWS (no medium or high finding)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from infra_support import REPO_ROOT, TF_ROOT, tf_files

BIN = Path(sys.executable).parent
SKIP_COMMENT = re.compile(r"#\s*checkov:skip=([A-Z0-9_]+)(?::(.*))?")


def _tool(name: str) -> str:
    path = BIN / name
    found = str(path) if path.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: run `uv sync --frozen --all-extras`")
    return found


@pytest.fixture(scope="module")
def checkov_report() -> dict:
    """One checkov run per session (it takes some tens of seconds)."""
    result = subprocess.run(  # fixed argv, no shell
        [
            _tool("checkov"),
            "-d",
            str(TF_ROOT),
            "--framework",
            "terraform",
            "--quiet",
            "--compact",
            "-o",
            "json",
            "--skip-download",  # no network: no Prisma Cloud guideline download
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO_ROOT,
    )
    assert result.stdout.strip(), f"checkov printed nothing:\n{result.stderr[-3000:]}"
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    (terraform,) = [r for r in reports if r.get("check_type") == "terraform"]
    return terraform


def test_checkov_has_zero_failed_checks(checkov_report):
    summary = checkov_report["summary"]
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']}): {c['check_name']}"
        for c in checkov_report["results"].get("failed_checks", [])
    ]
    assert summary["failed"] == 0 and not failed, "\n".join(failed)
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 300, summary  # the scan really covered the modules
    declared = sum(len(re.findall(r'^resource "', path.read_text(), re.MULTILINE))
                   for path in tf_files())
    assert summary["resource_count"] >= declared > 0, summary  # every resource block was seen


def test_checkov_skips_are_inline_with_a_reason(checkov_report):
    skips = []
    for path in tf_files():
        for line in path.read_text().splitlines():
            match = SKIP_COMMENT.search(line)
            if match:
                skips.append((path, match.group(1), (match.group(2) or "").strip()))
    for path, check, reason in skips:
        assert len(reason) >= 20, f"{path}: skip of {check} needs a real reason"
    assert checkov_report["summary"]["skipped"] >= len(skips) > 0


def test_bandit_finds_nothing_medium_or_high():
    result = subprocess.run(  # fixed argv, no shell
        [
            _tool("bandit"),
            "-r",
            "-ll",
            "-q",
            "-f",
            "json",
            "ingestion_lambdas",
            "leanops_dagster",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
    )
    report = json.loads(result.stdout)
    findings = [
        f"{r['filename']}:{r['line_number']} {r['test_id']} {r['issue_severity']}: "
        f"{r['issue_text']}"
        for r in report["results"]
        if r["issue_severity"] in {"MEDIUM", "HIGH"}
    ]
    assert not findings, "\n".join(findings)
    assert not report["errors"], report["errors"]
    assert result.returncode == 0, result.stderr
