"""checkov (the dev extra) on charts/vitpipeline as the pinned helm renders it, and on both
Dockerfiles: no failed check. A check that does not apply is skipped where it is, with its
reason: `checkov.io/skipN: CHECK_ID=reason` annotations in the chart's templates,
`# checkov:skip=CHECK_ID: reason` comments in the Dockerfiles.

checkov runs offline: no API key, no mapping or policy download, no SCA scan, no update check,
no config file of the user's (HOME and the working directory are the test's own).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chart.helmchart import ROOT, set_list

CHECKOV = Path(sys.executable).parent / "checkov"
DOCKERFILES = [ROOT / "images" / name / "Dockerfile" for name in ("operator", "pipeline")]
DIGEST = "sha256:" + "ab" * 32
NAMESPACED = set_list("watchNamespaces", ["team-a", "team-b"])

# Each set of values renders into its own folder; "complete" sets every optional block.
VARIANTS: dict[str, list[str]] = {
    "defaults": [],
    "namespaced": NAMESPACED,
    "complete": [
        *NAMESPACED,
        "--set",
        "s3.endpointUrl=http://minio:9000",
        "--set",
        "s3.region=eu-west-1",
        "--set",
        "s3.credentialsSecret.name=op-s3",
        "--set",
        "serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::1:role/r",
        "--set",
        "podAnnotations.team=vision",
        "--set",
        "podLabels.tier=ops",
        "--set",
        "nodeSelector.kubernetes\\.io/os=linux",
        "--set-json",
        'tolerations=[{"key":"dedicated","operator":"Exists","effect":"NoSchedule"}]',
        "--set",
        "priorityClassName=ops-critical",
        "--set-json",
        'imagePullSecrets=[{"name":"registry"}]',
    ],
    # Pinned by digest and pulled on every start: the skips that depend on values go away.
    "pinned": ["--set", f"image.digest={DIGEST}", "--set", "image.pullPolicy=Always"],
}


def run_checkov(tmp: Path, framework: str, *targets: str) -> list[dict]:
    """checkov's JSON reports (one per framework run), offline."""
    assert CHECKOV.is_file(), f"checkov is missing at {CHECKOV}: uv sync --frozen --all-extras"
    home = tmp / "checkov-home"
    home.mkdir(exist_ok=True)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BC_", "CKV_", "CHECKOV_", "PRISMA_")) and k not in ("HTTPS_PROXY", "HTTP_PROXY")
    }
    env |= {
        "HOME": str(home),
        "CKV_CACHE_DIR": str(home / "cache"),
        "BC_SKIP_MAPPING": "TRUE",
        "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false",
        "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true",
        "LOG_LEVEL": "WARNING",
    }
    proc = subprocess.run(
        # Not --quiet: in JSON it drops the passed and skipped checks, which the tests read.
        [str(CHECKOV), *targets, "--framework", framework, "--output", "json", "--skip-download"],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    # 0: nothing failed; 1: some check failed. Anything else is checkov itself failing.
    assert proc.returncode in (0, 1), f"checkov exited {proc.returncode}:\n{proc.stderr[-4000:]}"
    try:
        out = json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"checkov printed no JSON report:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    reports = out if isinstance(out, list) else [out]
    # With nothing to scan checkov prints a bare summary: that is a broken test, not a pass.
    assert all("results" in r for r in reports), f"checkov scanned nothing: {out}"
    assert [r["check_type"] for r in reports] == [framework], [r["check_type"] for r in reports]
    return reports


def results(reports: list[dict], kind: str) -> list[dict]:
    return [c for r in reports for c in r["results"].get(kind, [])]


def assert_clean(reports: list[dict]) -> None:
    assert [r["summary"]["parsing_errors"] for r in reports] == [0] * len(reports), results(reports, "parsing_errors")
    failed = results(reports, "failed_checks")
    assert failed == [], f"{len(failed)} failed checkov check(s):\n" + "\n".join(
        f"  {c['check_id']} ({c['check_name']}): {c['resource']} in {c['file_path']}"
        f":{'-'.join(map(str, c.get('file_line_range') or []))}"
        for c in failed
    )
    for c in results(reports, "skipped_checks"):
        reason = (c.get("check_result") or {}).get("suppress_comment", "")
        assert len(reason.strip()) > 20 and reason != "No comment provided", (
            f"{c['check_id']} on {c['resource']} in {c['file_path']} is skipped without a reason"
        )


@pytest.fixture(scope="module")
def chart_reports(helm, chart, tmp_path_factory) -> list[dict]:
    rendered = tmp_path_factory.mktemp("rendered")
    for name, args in VARIANTS.items():
        helm.run("template", "rel", str(chart), "--namespace", "ops", *args, "--output-dir", str(rendered / name))
    return run_checkov(rendered, "kubernetes", "--directory", str(rendered))


def test_rendered_chart_passes_checkov(chart_reports):
    assert_clean(chart_reports)
    checked = results(chart_reports, "passed_checks") + results(chart_reports, "skipped_checks")
    # Every variant's workload was scanned (a variant that rendered nothing would pass vacuously).
    for name in VARIANTS:
        assert any(
            c["file_path"] == f"/{name}/vitpipeline/templates/deployment.yaml"
            and c["resource"].startswith("Deployment.")
            for c in checked
        ), name
    assert len(results(chart_reports, "passed_checks")) > 100


def test_value_dependent_skips_go_when_the_values_comply(chart_reports):
    """The digest and pull-policy skips are rendered only while they apply."""

    def outcome(variant: str, check_id: str) -> set[str]:
        return {
            kind
            for kind in ("passed_checks", "skipped_checks", "failed_checks")
            for c in results(chart_reports, kind)
            if c["check_id"] == check_id and c["file_path"].startswith(f"/{variant}/")
        }

    for check_id in ("CKV_K8S_43", "CKV_K8S_15"):  # image digest, imagePullPolicy Always
        assert outcome("defaults", check_id) == {"skipped_checks"}, check_id
        assert outcome("pinned", check_id) == {"passed_checks"}, check_id
    assert outcome("complete", "CKV_K8S_35") == {"skipped_checks"}  # secrets as env: only when set
    assert outcome("defaults", "CKV_K8S_35") == {"passed_checks"}


def test_dockerfiles_pass_checkov(tmp_path):
    reports = run_checkov(tmp_path, "dockerfile", "--file", *map(str, DOCKERFILES))
    assert_clean(reports)
    checked = {c["file_path"] for kind in ("passed_checks", "skipped_checks") for c in results(reports, kind)}
    assert checked == {str(p) for p in DOCKERFILES}, checked
