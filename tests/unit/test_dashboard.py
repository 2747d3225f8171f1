"""The Grafana dashboard (deploy/grafana/tradepit.json) parses, and every series its queries name
is one the venue exports: the families are read from the metrics' own registries, as a scrape
would, so a metric renamed in the code and not in the dashboard fails here."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from tradepit.metrics.gateway import GatewayMetrics
from tradepit.metrics.stage import StageMetrics
from tradepit.metrics.valkey import ValkeyMetrics

DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "tradepit.json"
_NAME = re.compile(r"\btradepit_[a-z_]+\b")
# The series Prometheus stores for each kind of family (`_created` ones are never queried).
_SERIES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "gauge": ("",),
}


def _families() -> dict[str, str]:
    """Every tradepit family the gateway, the stages and the Valkey sampler export: name ->
    type. Prometheus_client names a counter without its `_total`."""
    registries = [GatewayMetrics().registry, StageMetrics(CollectorRegistry()).registry]
    valkey = CollectorRegistry()
    ValkeyMetrics(valkey)
    registries.append(valkey)
    return {
        family.name: family.type
        for registry in registries
        for family in registry.collect()
        if family.name.startswith("tradepit_")
    }


def _exported_series() -> set[str]:
    return {
        name + suffix for name, kind in _families().items() for suffix in _SERIES.get(kind, ("",))
    }


def _panels() -> list[dict[str, Any]]:
    dashboard = json.loads(DASHBOARD.read_text())
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))  # a collapsed row keeps its panels inside
    return [panel for panel in found if panel["type"] != "row"]


def test_the_dashboard_is_grafana_json_on_a_prometheus_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["schemaVersion"] >= 36 and dashboard["uid"] == "tradepit"
    (variable,) = [v for v in dashboard["templating"]["list"] if v["name"] == "datasource"]
    assert (variable["type"], variable["query"]) == ("datasource", "prometheus")
    panels = _panels()
    assert len(panels) >= 20
    for panel in panels:
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            assert target["expr"] and target["datasource"]["uid"] == "${datasource}"


def test_the_panels_do_not_overlap() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    taken: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        place = panel["gridPos"]
        assert place["x"] + place["w"] <= 24, panel["title"]
        cells = {
            (x, y)
            for x in range(place["x"], place["x"] + place["w"])
            for y in range(place["y"], place["y"] + place["h"])
        }
        assert not cells & taken, panel["title"]
        taken |= cells


def test_the_families_are_read_from_the_code() -> None:
    families = _families()
    # A few of each process kind: if these are missing, the registries were not read.
    assert families["tradepit_http_request_duration_seconds"] == "histogram"
    assert families["tradepit_stage_batches"] == "counter"
    assert families["tradepit_valkey_used_memory_bytes"] == "gauge"


@pytest.mark.parametrize("panel", _panels(), ids=lambda panel: panel["title"])
def test_every_query_names_only_series_the_venue_exports(panel: dict[str, Any]) -> None:
    exported = _exported_series()
    for target in panel["targets"]:
        named = set(_NAME.findall(target["expr"]))
        assert named, target["expr"]
        assert named <= exported, f"not exported: {sorted(named - exported)}"


def test_every_family_has_a_panel() -> None:
    queried = {
        name
        for panel in _panels()
        for target in panel["targets"]
        for name in _NAME.findall(target["expr"])
    }
    for name, kind in _families().items():
        series = {name + suffix for suffix in _SERIES.get(kind, ("",))}
        assert series & queried, f"{name} is on no panel"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="Prometheus' promtool not installed")
def test_every_query_is_promql_that_prometheus_parses(tmp_path: Path) -> None:
    """Each query as a recording rule, which `promtool check rules` parses (Grafana's
    $__rate_interval given a value, as Grafana gives it one)."""
    rules = [
        {"record": f"tradepit:check:{n}", "expr": target["expr"].replace("$__rate_interval", "1m")}
        for n, target in enumerate(t for panel in _panels() for t in panel["targets"])
    ]
    path = tmp_path / "rules.json"  # YAML is a superset of JSON
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    checked = subprocess.run(
        ["promtool", "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
