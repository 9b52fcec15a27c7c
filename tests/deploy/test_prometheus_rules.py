"""deploy/prometheus/alerts.yml: valid for Prometheus (``promtool check rules``), behaving as its unit tests
say (``promtool test rules``), each alert with a summary and a runbook section, over exported metrics."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import DEPLOY, exported_names, queried_names

RULES = DEPLOY / "prometheus" / "alerts.yml"
RULE_TESTS = DEPLOY / "prometheus" / "alerts.test.yml"
RUNBOOK = Path(__file__).resolve().parents[2] / "docs" / "runbook.md"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    assert tool is not None, "promtool is missing: scripts/test installs Debian's prometheus package"
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_promtool_accepts_the_rules() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    result = promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_broken_threshold_fails_the_unit_tests(tmp_path: Path) -> None:
    """The unit tests can fail: the error-rate page moved to 50% is caught."""
    (tmp_path / "alerts.yml").write_text(RULES.read_text().replace("> 0.05", "> 0.5"))
    (tmp_path / "alerts.test.yml").write_text(RULE_TESTS.read_text())
    result = promtool("test", "rules", str(tmp_path / "alerts.test.yml"))
    assert result.returncode != 0
    assert "LightboxHighErrorRate" in result.stdout + result.stderr


def test_the_issue_asks_for_these_alerts(alerts: list[dict[str, Any]]) -> None:
    names = {rule["alert"] for rule in alerts}
    assert {
        "LightboxHighErrorRate",  # error rate
        "LightboxHighLatency",  # p99 latency by route
        "LightboxNotReady",  # readiness failing
        "LightboxStorageAlmostFull",  # disk almost full
        "LightboxUploadRejectionsSpiking",  # upload rejections spiking
        "LightboxDecodeSandboxRestarts",  # decode sandbox restarts
        "LightboxIndexErrors",  # index database errors
    } <= names


def test_every_alert_has_a_severity_a_summary_a_runbook_section_and_a_unit_test(alerts: list[dict[str, Any]]) -> None:
    runbook = RUNBOOK.read_text()
    headings = {m.lower() for m in re.findall(r"^## (\w+)$", runbook, re.MULTILINE)}
    tested = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    firing = {
        case["alertname"] for test in tested for case in test.get("alert_rule_test", []) if case.get("exp_alerts")
    }
    for rule in alerts:
        name = rule["alert"]
        assert rule["labels"]["severity"] in {"page", "warning"}, name
        assert rule["annotations"]["summary"], name
        assert rule["annotations"]["runbook_url"] == f"docs/runbook.md#{name.lower()}"
        assert name.lower() in headings, f"docs/runbook.md has no section '## {name}'"
        assert name in firing, f"alerts.test.yml never shows {name} firing"


def test_rules_query_only_metrics_the_service_exports(alerts: list[dict[str, Any]], scraped: str) -> None:
    queried = set().union(*(queried_names(rule["expr"]) for rule in alerts))
    assert queried - exported_names(scraped) == set()
