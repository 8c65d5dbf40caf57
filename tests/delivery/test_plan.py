"""``streamguard plan`` and ``streamguard validate``: offline, against Git, and against the real
apiserver and Schema Registry."""

import json
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from streamguard.devstack.endpoints import Endpoints
from tests.delivery.conftest import REPO, SPINE, Cli

Kubectl = Callable[..., subprocess.CompletedProcess[str]]
FINSERVE = REPO / "examples" / "finserve"
OFFLINE: dict[str, str | None] = {"STREAMGUARD_REGISTRY_URL": None, "KUBECONFIG": "/nonexistent"}


def load(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def save(path: Path, docs: list[dict[str, Any]]) -> None:
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))


def edit_window(folder: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    """Apply ``edit`` to the StreamingWindow document of the folder's windows.yaml."""
    docs = load(folder / "windows.yaml")
    edit(next(d for d in docs if d["kind"] == "StreamingWindow"))
    save(folder / "windows.yaml", docs)


def add_field(field: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    def edit(window: dict[str, Any]) -> None:
        schema = json.loads(window["spec"]["contract"]["schema"])
        schema["fields"].append(field)
        window["spec"]["contract"]["schema"] = json.dumps(schema)
    return edit


def field_lines(output: str) -> list[str]:
    """The field-level diff lines of a text plan."""
    return [line.strip() for line in output.splitlines() if line.startswith("      ") and line.strip()[:2] in
            ("~ ", "+ ", "- ")]


# ---- offline ----------------------------------------------------------------------------------------------

def test_validate_accepts_the_examples(cli: Cli) -> None:
    for folder in (SPINE, FINSERVE):
        result = cli("validate", str(folder), "--no-base", env=OFFLINE)
        assert result.exit_code == 0, result.output
        assert "OK: nothing would break" in result.output


@pytest.mark.parametrize("folder", [SPINE, FINSERVE], ids=["spine", "finserve"])
def test_plan_against_an_empty_cluster_creates_everything(cli: Cli, folder: Path) -> None:
    declared = [d for f in sorted(folder.rglob("*.yaml")) for d in load(f) if d.get("apiVersion", "").startswith(
        "streamguard.dev/")]
    result = cli("plan", str(folder), "--empty", "--no-base", "--no-feast", env=OFFLINE)
    assert result.exit_code == 0, result.output
    created = [line for line in result.output.splitlines() if line.startswith("  + ")]
    assert len(created) == len(declared) > 0
    assert f"Plan: {len(declared)} to create, 0 to change, 0 to delete, 0 unchanged." in result.output


def test_markdown_for_the_job_summary(cli: Cli) -> None:
    result = cli("plan", str(SPINE), "--empty", "--no-base", "--no-feast", "--format", "markdown", env=OFFLINE)
    assert result.exit_code == 0
    assert result.output.startswith(f"### StreamGuard plan: `{SPINE}`")
    assert "| Action | Resource | Details |" in result.output
    assert "| 🆕 create | FeatureView `default/card-activity` |" in result.output


def test_validate_names_the_resource_and_field(cli: Cli, tmp_path: Path) -> None:
    docs = load(SPINE / "views.yaml") + load(SPINE / "windows.yaml")
    docs[0]["spec"]["entities"][0]["joinKeyy"] = "card_id"
    window = docs[1]
    window["spec"]["aggregations"].append({"name": "card_max", "function": "max", "field": "card_id"})
    docs[2]["spec"]["featureView"] = "no-such-view"
    save(tmp_path / "all.yaml", docs)
    result = cli("validate", str(tmp_path), "--no-base", env=OFFLINE)
    assert result.exit_code == 1
    out = result.output
    assert "FeatureView default/card-activity" in out and ".spec.entities[0].joinKeyy" in out
    assert "StreamingWindow default/card-tx .spec.aggregations[2].field" in out and "needs a numeric field" in out
    assert "DriftMonitor default/card-activity-drift" in out and "FeatureViewNotFound" in out
    assert "FAILED: 3 problems would break the apply" in out


def test_invalid_yaml_is_reported_not_raised(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("apiVersion: streamguard.dev/v1alpha1\nkind: FeatureView\n  spec: [")
    result = cli("validate", str(tmp_path), "--no-base", env=OFFLINE)
    assert result.exit_code == 1
    assert "bad.yaml: not valid YAML" in result.output


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=cwd, check=True,
                   capture_output=True)


def test_validate_checks_contracts_against_git(cli: Cli, spine_copy: Path) -> None:
    git(spine_copy, "init", "-q", "-b", "main")
    git(spine_copy, "add", ".")
    git(spine_copy, "commit", "-q", "-m", "base")
    edit_window(spine_copy, add_field({"name": "mcc", "type": ["null", "string"], "default": None}))
    compatible = cli("validate", str(spine_copy), "--base", "main", env=OFFLINE)
    assert compatible.exit_code == 0, compatible.output
    assert "ok   StreamingWindow default/card-tx: subject default.card-tx-value vs git main" in compatible.output
    edit_window(spine_copy, add_field({"name": "merchant_id", "type": "string"}))
    broken = cli("validate", str(spine_copy), "--base", "main", env=OFFLINE)
    assert broken.exit_code == 1
    assert "FAIL StreamingWindow default/card-tx: subject default.card-tx-value vs git main" in broken.output
    assert "READER_FIELD_MISSING_DEFAULT_VALUE at .merchant_id" in broken.output


def test_unreachable_registry_leaves_the_offline_checks(cli: Cli) -> None:
    dead = "http://127.0.0.1:9/apis/ccompat/v7"
    result = cli("plan", str(SPINE), "--empty", "--no-base", "--no-feast", "--registry-url", dead, env=OFFLINE)
    assert result.exit_code == 0, result.output
    assert f"schema registry {dead} unreachable" in result.output
    assert "contracts checked offline only" in result.output
    assert "new to the registry" not in result.output, "no answer is not an answer"


# ---- against the real apiserver and registry --------------------------------------------------------------

@pytest.fixture
def live(stack: Endpoints, crds: None) -> dict[str, str | None]:
    return {"KUBECONFIG": stack.kubeconfig, "STREAMGUARD_REGISTRY_URL": None}


@pytest.mark.stack
def test_plan_apply_edit_cycle(cli: Cli, kubectl: Kubectl, namespace: str, spine_copy: Path,
                               live: dict[str, str | None]) -> None:
    args = ("plan", str(spine_copy), "-n", namespace, "--no-base", "--no-feast")
    fresh = cli(*args, env=live)
    assert fresh.exit_code == 0, fresh.output
    assert "Plan: 3 to create, 0 to change, 0 to delete, 0 unchanged." in fresh.output

    kubectl("apply", "-n", namespace, "-f", str(spine_copy))
    unchanged = cli(*args, env=live)
    assert unchanged.exit_code == 0, unchanged.output
    assert "No changes: the cluster matches the folder." in unchanged.output
    assert "Plan: 0 to create, 0 to change, 0 to delete, 3 unchanged." in unchanged.output

    views = load(spine_copy / "views.yaml")
    views[0]["spec"]["freshnessSla"] = "10m"
    save(spine_copy / "views.yaml", views)
    edited = cli(*args, env=live)
    assert edited.exit_code == 0, edited.output
    assert f"  ~ FeatureView {namespace}/card-activity (change)" in edited.output
    assert field_lines(edited.output) == ['~ .spec.freshnessSla: "5m" -> "10m"']
    assert "Plan: 0 to create, 1 to change, 0 to delete, 2 unchanged." in edited.output

    windows = [d for d in load(spine_copy / "windows.yaml") if d["kind"] != "DriftMonitor"]
    save(spine_copy / "windows.yaml", windows)
    deleted = cli(*args, env=live)
    assert f"  - DriftMonitor {namespace}/card-activity-drift (delete)" in deleted.output
    assert "deleting it stops its drift exporter" in deleted.output


@pytest.mark.stack
def test_incompatible_contract_edit_fails_the_plan(cli: Cli, kubectl: Kubectl, namespace: str, spine_copy: Path,
                                                   live: dict[str, str | None], registry_url: str) -> None:
    subject = f"delivery-plan-{uuid.uuid4().hex[:10]}-value"
    edit_window(spine_copy, lambda w: w["spec"]["contract"].update(subject=subject))
    kubectl("apply", "-n", namespace, "-f", str(spine_copy))
    schema = next(d for d in load(spine_copy / "windows.yaml") if d["kind"] == "StreamingWindow")["spec"][
        "contract"]["schema"]
    assert httpx.put(f"{registry_url}/config/{subject}", json={"compatibility": "BACKWARD"}).status_code == 200
    assert httpx.post(f"{registry_url}/subjects/{subject}/versions", json={"schema": schema}).status_code == 200
    env = {**live, "STREAMGUARD_REGISTRY_URL": registry_url}
    args = ("plan", str(spine_copy), "-n", namespace, "--no-base", "--no-feast")

    edit_window(spine_copy, add_field({"name": "mcc", "type": ["null", "string"], "default": None}))
    compatible = cli(*args, env=env)
    assert compatible.exit_code == 0, compatible.output
    assert f"ok   StreamingWindow {namespace}/card-tx: subject {subject} vs registry" in compatible.output
    assert f"ok   StreamingWindow {namespace}/card-tx: subject {subject} vs the live cluster" in compatible.output

    edit_window(spine_copy, add_field({"name": "merchant_id", "type": "string"}))
    broken = cli(*args, env=env)
    assert broken.exit_code == 1, broken.output
    assert f"FAIL StreamingWindow {namespace}/card-tx: subject {subject} vs registry" in broken.output
    assert f"FAIL StreamingWindow {namespace}/card-tx: subject {subject} vs the live cluster" in broken.output
    assert "READER_FIELD_MISSING_DEFAULT_VALUE at .merchant_id" in broken.output
    assert "FAILED:" in broken.output


@pytest.mark.stack
def test_admission_rules_are_checked_by_the_apiserver(cli: Cli, namespace: str, spine_copy: Path,
                                                      live: dict[str, str | None]) -> None:
    def bad_slide(window: dict[str, Any]) -> None:
        window["spec"]["windows"][0]["slide"] = "25s"

    edit_window(spine_copy, bad_slide)
    result = cli("plan", str(spine_copy), "-n", namespace, "--no-base", "--no-feast", env=live)
    assert result.exit_code == 1, result.output
    assert f"StreamingWindow {namespace}/card-tx" in result.output
    assert "window length must be a whole multiple of its slide" in result.output


@pytest.mark.stack
def test_unreachable_cluster_is_a_clear_error(cli: Cli, tmp_path: Path) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "users": [{"name": "u", "user": {"token": "x"}}],
    }))
    result = cli("plan", str(SPINE), "--kubeconfig", str(config), "--no-feast", env=OFFLINE)
    assert result.exit_code == 2
    assert "cannot reach the cluster" in result.output


def _duplicate_feature(docs: list[dict[str, Any]]) -> None:
    docs[0]["spec"]["features"].append(dict(docs[0]["spec"]["features"][0]))


def _feature_named_like_join_key(docs: list[dict[str, Any]]) -> None:
    docs[0]["spec"]["features"].append({"name": "card_id", "dtype": "STRING"})


def _slide_not_dividing_length(docs: list[dict[str, Any]]) -> None:
    docs[1]["spec"]["windows"][0]["slide"] = "25s"


def _sum_without_field(docs: list[dict[str, Any]]) -> None:
    docs[1]["spec"]["aggregations"][1].pop("field")


def _ks_feature_not_watched(docs: list[dict[str, Any]]) -> None:
    docs[2]["spec"]["ksFeatures"] = ["tx_count_1m"]


CEL_CASES = [
    (_duplicate_feature, "FeatureView", "feature names must be unique"),
    (_feature_named_like_join_key, "FeatureView", "a feature may not reuse an entity join key as its name"),
    (_slide_not_dividing_length, "StreamingWindow", "window length must be a whole multiple of its slide"),
    (_sum_without_field, "StreamingWindow", "field is required for sum, avg, min and max"),
    (_ks_feature_not_watched, "DriftMonitor", "every ksFeatures entry must also be listed in features"),
]


def broken_copy(folder: Path, edit: Callable[[list[dict[str, Any]]], None]) -> Path:
    docs = load(SPINE / "views.yaml") + load(SPINE / "windows.yaml")
    edit(docs)
    folder.mkdir()
    save(folder / "all.yaml", docs)
    return folder


@pytest.mark.parametrize(("edit", "kind", "message"), CEL_CASES, ids=[c[2][:30] for c in CEL_CASES])
def test_offline_validation_evaluates_the_crd_cel_rules(
    cli: Cli, tmp_path: Path, edit: Callable[[list[dict[str, Any]]], None], kind: str, message: str
) -> None:
    result = cli("validate", str(broken_copy(tmp_path / "f", edit)), "--no-base", env=OFFLINE)
    assert result.exit_code == 1, result.output
    problem = next(line for line in result.output.splitlines() if message in line)
    assert f"{kind} default/" in problem


@pytest.mark.stack
@pytest.mark.parametrize(("edit", "kind", "message"), CEL_CASES, ids=[c[2][:30] for c in CEL_CASES])
def test_offline_cel_verdicts_match_the_apiserver(
    cli: Cli, namespace: str, tmp_path: Path, live: dict[str, str | None],
    edit: Callable[[list[dict[str, Any]]], None], kind: str, message: str
) -> None:
    folder = broken_copy(tmp_path / "f", edit)
    offline = cli("validate", str(folder), "--no-base", env=OFFLINE)
    online = cli("plan", str(folder), "-n", namespace, "--no-base", "--no-feast", env=live)
    assert (offline.exit_code, online.exit_code) == (1, 1), online.output
    for output in (offline.output, online.output):
        assert message in output, output
