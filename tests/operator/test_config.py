"""Settings from the environment, the ClusterRole, the CRDs in git, and the package layout."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from streamguard.operator.cli import command
from streamguard.operator.rbac import cluster_role
from streamguard.operator.settings import OperatorSettings

REPO = Path(__file__).resolve().parents[2]


def test_settings_from_env() -> None:
    settings = OperatorSettings.from_env(
        {
            "STREAMGUARD_OPERATOR_IMAGE": "img:9",
            "STREAMGUARD_OPERATOR_STREAM_RESOURCES": '{"requests": {"cpu": "1"}}',
            "STREAMGUARD_OPERATOR_CHECKPOINT_STORAGE": "",
            "STREAMGUARD_KAFKA_BOOTSTRAP": "k:9092",
            "STREAMGUARD_REGISTRY_URL": "http://r/apis/ccompat/v7",
            "STREAMGUARD_OPERATOR_DEAD_LETTER_MAX_RATIO": "0.05",
            "STREAMGUARD_OPERATOR_DEAD_LETTER_WINDOW_SECONDS": "30",
            "STREAMGUARD_OPERATOR_UNKNOWN_SCHEMA_GRACE_SECONDS": "10",
        },
        workers=2,
    )
    assert (settings.dead_letter_max_ratio, settings.dead_letter_window_seconds) == (0.05, 30)
    assert settings.unknown_schema_grace_seconds == 10
    assert settings.image == "img:9" and settings.workers == 2
    assert settings.stream_resources.requests == {"cpu": "1"}
    assert settings.checkpoint_storage is None
    assert settings.kafka_bootstrap == "k:9092"
    assert settings.registry_for_operator() == "http://r/apis/ccompat/v7"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("STREAMGUARD_OPERATOR_STREAM_RESOURCES", "{nope"),
        ("STREAMGUARD_OPERATOR_IMAGE_PULL_POLICY", "Sometimes"),
        ("STREAMGUARD_OPERATOR_WORKERS", "0"),
        ("STREAMGUARD_OPERATOR_DEAD_LETTER_MAX_RATIO", "1.5"),
        ("STREAMGUARD_OPERATOR_DEAD_LETTER_WINDOW_SECONDS", "0"),
    ],
)
def test_bad_settings_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(
        ValueError, match=name.removeprefix("STREAMGUARD_OPERATOR_").lower() if "RESOURCES" not in name else name
    ):
        OperatorSettings.from_env({name: value})


def test_rbac_is_least_privilege() -> None:
    role = cluster_role()
    verbs: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                verbs.setdefault((group, resource), set()).update(rule["verbs"])
    assert ("", "secrets") not in verbs
    assert "*" not in {v for vs in verbs.values() for v in vs}
    # patch: the finalizers and the registration record it keeps in their metadata; never create or delete.
    assert verbs[("streamguard.dev", "featureviews")] == {"get", "list", "watch", "patch"}
    assert verbs[("streamguard.dev", "streamingwindows")] == {"get", "list", "watch", "patch"}
    assert verbs[("streamguard.dev", "driftmonitors")] == {"get", "list", "watch"}
    assert verbs[("streamguard.dev", "featureviews/status")] == {"get", "patch"}
    assert verbs[("apps", "deployments")] == {"get", "list", "watch", "create", "patch", "delete"}
    printed = CliRunner().invoke(command, ["rbac"])
    assert printed.exit_code == 0
    assert yaml.safe_load(printed.output) == role


def test_committed_crds_match_the_models() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "streamguard"), "crds", "check", "--dir", str(REPO / "crds")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_operator_folder_cannot_shadow_the_stdlib() -> None:
    assert not (REPO / "operator" / "__init__.py").exists()
    code = (
        "import operator, streamguard.operator.render.common as c; "
        "assert operator.add(1, 2) == 3 and hasattr(operator, 'itemgetter'); print(c.__name__)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "streamguard.operator.render.common"
