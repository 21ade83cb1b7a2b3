"""The Grafana dashboard and Prometheus alert rules in docs/monitoring/ use only metrics that a
running filterdns exports, each with the suffix its type gives it (``_total`` for counters,
``_bucket`` for histograms, ``_info`` for info), so an operator who loads them gets no empty
panels and no alert that can never fire."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from filterdns.config.loader import load_config
from filterdns.server.service import Service

REPO = Path(__file__).resolve().parents[1]
MONITORING = REPO / "docs" / "monitoring"
METRIC = re.compile(r"\bfilterdns_[a-z_]+\b")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "info": ("_info",)}


def rule_expressions() -> list[str]:
    rules = yaml.safe_load((MONITORING / "prometheus-rules.yml").read_text())
    found = []
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule["alert"]
            assert rule["annotations"]["summary"], rule["alert"]
            found.append(rule["expr"])
    return found


def dashboard_expressions() -> list[str]:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    found = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    found += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return found


@pytest.fixture(scope="module")
def exported() -> dict[str, str]:
    """Every metric family of a service built from the example config: name -> type."""
    service = Service(load_config(REPO / "config.yaml"))
    return {family.name: family.type for family in service.metrics.registry.collect()}


@pytest.mark.parametrize("source", [rule_expressions, dashboard_expressions], ids=["alert rules", "dashboard"])
def test_every_metric_used_is_exported_with_the_right_suffix(source, exported):
    used = {name for expression in source() for name in METRIC.findall(expression)}
    assert used, "no filterdns metric used at all"
    for name in sorted(used):
        if name in exported:
            assert exported[name] in ("gauge", "unknown"), f"{name}: a {exported[name]} is scraped with a suffix"
            continue
        matches = [
            (base, kind)
            for base, kind in exported.items()
            for suffix in SUFFIXES.get(kind, ())
            if name == base + suffix
        ]
        assert matches, f"{name} is not exported by filterdns"


def test_the_alerts_cover_what_operators_asked_for():
    expressions = " ".join(rule_expressions())
    for metric in ("filterdns_upstream_up", "filterdns_store_up", "filterdns_store_buffered_events",
                   "filterdns_list_sources_failing", "filterdns_rate_limited_total"):  # fmt: skip
        assert metric in expressions, metric
