"""The Grafana dashboard parses, shows what the issue asks for, and uses only documented metrics the
way their type allows (histograms through ``_bucket``/``_sum``/``_count``, counters through rate/increase)."""

import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
DASHBOARD = REPO / "charts" / "streamguard" / "files" / "grafana-dashboard.json"
METRICS_DOC = REPO / "docs" / "metrics.md"
METRIC = re.compile(r"\b((?:streamguard|redis)_[a-z0-9_]+)\b")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def _documented() -> dict[str, str]:
    """Metric name -> type, from the table rows of docs/metrics.md."""
    types = {}
    for line in METRICS_DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[0].startswith("`"):
            types[cells[0].strip("`")] = cells[1]
    return types


def _panels() -> list[dict[str, object]]:
    return [p for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] != "row"]


def _exprs(panel: dict[str, object]) -> list[str]:
    targets = panel["targets"]
    assert isinstance(targets, list)
    return [str(t["expr"]) for t in targets]


def test_metrics_doc_has_the_agreed_columns() -> None:
    header = next(line for line in METRICS_DOC.read_text().splitlines() if line.startswith("| name"))
    assert [c.strip() for c in header.strip("|").split("|")] == [
        "name",
        "type",
        "labels",
        "unit",
        "emitted by",
        "meaning",
    ]
    assert all(t in {"gauge", "counter", "histogram", "summary", "info"} for t in _documented().values())


def test_dashboard_parses_and_has_unique_ids_and_a_datasource_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert dashboard["uid"] == "streamguard-overview"
    assert {"datasource", "view", "monitor"} <= {v["name"] for v in dashboard["templating"]["list"]}
    assert all(_exprs(p) for p in _panels())


def test_dashboard_shows_every_required_signal() -> None:
    used = {m for p in _panels() for e in _exprs(p) for m in METRIC.findall(e)}
    assert used >= {
        "streamguard_drift_psi",
        "streamguard_drift_share",
        "streamguard_feature_freshness_seconds",
        "streamguard_materialize_duration_seconds_sum",
        "streamguard_materialize_rows_total",
        "streamguard_stream_event_time_lag_seconds",
        "streamguard_serving_request_duration_seconds_bucket",
        "redis_memory_used_bytes",
    }


def test_every_panel_metric_is_documented_and_used_as_its_type() -> None:
    documented = _documented()
    problems = []
    for panel in _panels():
        for expr in _exprs(panel):
            for name in METRIC.findall(expr):
                base = next((name.removesuffix(s) for s in HISTOGRAM_SUFFIXES if name.endswith(s)), name)
                kind = documented.get(name) or documented.get(base)
                if kind is None:
                    problems.append(f"{panel['title']}: {name} is not in docs/metrics.md")
                elif kind == "histogram" and name == base:
                    problems.append(f"{panel['title']}: histogram {name} used without _bucket/_sum/_count")
                elif kind == "counter" and not re.search(rf"(rate|increase)\(\s*{name}\b", expr):
                    problems.append(f"{panel['title']}: counter {name} used outside rate()/increase()")
    assert not problems, "\n".join(problems)
