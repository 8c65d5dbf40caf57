"""``feast plan`` on the Feast repository the FeatureViews generate (:mod:`streamguard.feastrepo`).

One repository per Feast project (a namespace and ``spec.project``, :mod:`streamguard.onlinestore.tenancy`) is
written to a temporary folder and planned with the real Feast CLI,
against an empty registry or a copy of the live one (``--feast-registry``). The registry file is copied
first, so planning never writes to it.
"""

import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from streamguard.api.featureview import FeatureViewSpec
from streamguard.delivery.resources import Resource

PLACEHOLDER_REDIS = "redis://127.0.0.1:6379/0"
"""``feast plan`` does not connect to the online store; the URL only fills ``feature_store.yaml``."""


@dataclass
class FeastPlan:
    ok: bool
    output: str = ""
    notes: list[str] = field(default_factory=list)


def feast_cli() -> str:
    beside = Path(sys.executable).with_name("feast")
    found = str(beside) if beside.is_file() else shutil.which("feast")
    if found is None:
        raise FileNotFoundError("the `feast` command is not installed (pip install 'feast[redis]')")
    return found


def run(resources: list[Resource], registry: Path | None = None, base_dir: Path | None = None,
        timeout: float = 300) -> FeastPlan | None:
    """``None`` when no FeatureView is declared; otherwise the combined ``feast plan`` of every project."""
    from streamguard.feastrepo.repo import write_repo

    projects: dict[tuple[str, str], dict[str, FeatureViewSpec]] = defaultdict(dict)
    for resource in resources:
        if resource.key.kind == "FeatureView":
            spec = FeatureViewSpec.model_validate(resource.spec)
            projects[resource.key.namespace, spec.project][resource.key.name] = spec
    if not projects:
        return None
    result = FeastPlan(True)
    outputs = []
    with tempfile.TemporaryDirectory(prefix="streamguard-feast-plan-") as scratch:
        for (namespace, project), views in sorted(projects.items()):
            repo = Path(scratch) / namespace / project
            registry_copy = None
            if registry is not None:
                registry_copy = Path(scratch) / f"{namespace}-{project}-registry.db"
                shutil.copyfile(registry, registry_copy)
            try:
                write_repo(repo, project, views, PLACEHOLDER_REDIS, base_dir=base_dir, registry_path=registry_copy,
                           namespace=namespace)
                done = subprocess.run([feast_cli(), "plan", "--skip-source-validation"], cwd=repo,
                                      capture_output=True, text=True, check=False, timeout=timeout)
            except (ValueError, FileNotFoundError, subprocess.TimeoutExpired) as error:
                result.ok = False
                outputs.append(f"[{namespace}/{project}] {error}")
                continue
            text = "\n".join(line for line in done.stdout.splitlines() if line.strip())
            outputs.append(f"[{namespace}/{project}]\n{text}")
            if done.returncode != 0:
                result.ok = False
                outputs.append(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "feast plan failed")
    result.output = "\n".join(outputs)
    if registry is None:
        result.notes.append("compared with an empty Feast registry (pass --feast-registry to compare with a copy "
                            "of the live one)")
    return result
