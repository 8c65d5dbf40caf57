"""The Dockerfile, checked without Docker: what it copies exists, what it runs exists, and its build steps
match the project (Python and Spark versions, connector artifacts, the package it installs). The image
itself is built from it by tests/devstack/node (``streamguard dev image``)."""

import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import click
import pytest

from streamguard.cli import main
from streamguard.devstack import versions
from streamguard.devstack.image import context_files, excluded, ignore_patterns
from tests.delivery.conftest import REPO

DOCKERFILE = REPO / "Dockerfile"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` with line continuations joined and comments dropped."""
    joined: list[str] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        joined.append(pending + stripped)
        pending = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1] if " " in text else "") for text in joined]


def args_of(name: str) -> list[str]:
    return [value for instruction, value in instructions() if instruction == name]


def build_args() -> dict[str, str]:
    return dict(arg.split("=", 1) for arg in args_of("ARG") if "=" in arg)


def local_copies() -> list[list[str]]:
    """Sources of every COPY that reads the build context (not ``--from=`` another stage)."""
    copies = []
    for value in args_of("COPY"):
        words = [w for w in shlex.split(value) if not w.startswith("--")]
        if "--from=" not in value:
            copies.append(words[:-1])
    return copies


def dockerignore_excludes(path: str) -> bool:
    return excluded(path, ignore_patterns((REPO / ".dockerignore").read_text()))


DEV_TOOLING = ("streamguard/devstack", "streamguard/demo")
"""Development tooling that must never reach the runtime image."""


def test_every_copied_path_exists_and_is_in_the_build_context() -> None:
    sources = [source for copy in local_copies() for source in copy]
    assert sources, "the Dockerfile copies nothing from the build context"
    for source in sources:
        assert (REPO / source).exists(), f"COPY {source}: no such path in the repository"
        assert not dockerignore_excludes(source.rstrip("/")), f"COPY {source}: excluded by .dockerignore"


def test_every_stage_starts_from_the_base_argument_defaulting_to_public_debian_slim() -> None:
    """One base for every stage (directly or through an earlier stage): docker builds it unchanged elsewhere,
    buildah builds it here from a local Debian base with --pull-never (no other image may be named)."""
    assert build_args()["BASE"] == "debian:bookworm-slim"
    froms = [value.split() for value in args_of("FROM")]
    assert froms and froms[0][0] == "${BASE}"
    for index, (parent, *_rest) in enumerate(froms):
        earlier = {words[-1] for words in froms[:index]}
        assert parent == "${BASE}" or parent in earlier, froms


def test_the_build_context_carries_no_development_tooling_but_the_connectors_pom() -> None:
    files = context_files(REPO)
    assert "pyproject.toml" in files and "streamguard/cli.py" in files
    tooling = [f for f in files if f.startswith(DEV_TOOLING)]
    assert tooling == ["streamguard/devstack/maven/spark-connectors.pom.xml"]
    assert not [f for f in files if "__pycache__" in f or f.startswith((".run/", ".venv/", "tests/"))]


def test_python_and_spark_versions_match_the_project() -> None:
    args = build_args()
    assert PYPROJECT["project"]["requires-python"] == f">={args['PYTHON_VERSION']},<3.12"
    assert f"pyspark=={args['SPARK_VERSION']}" in PYPROJECT["project"]["optional-dependencies"]["spark"]
    assert args["SPARK_VERSION"] == versions.SPARK


def stages() -> dict[str, list[tuple[str, str]]]:
    """Each stage's instructions, by stage name (``FROM x AS name``)."""
    found: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for instruction, value in instructions():
        if instruction == "FROM":
            current = found.setdefault(value.split()[-1], [])
        current.append((instruction, value))
    return found


def test_each_image_installs_only_its_workloads_extras() -> None:
    """The default target (operator, serving, materializer, drift exporter) has no JRE and no pyspark; the
    `spark` target has both and none of Feast or Evidently. Both images' venvs are pruned the same way."""
    by_stage = stages()
    assert list(by_stage)[-1] == "runtime", "the default (last) target must be the main image"
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert any(r.startswith("pyspark==") for r in extras["spark"])
    assert not any(r.startswith(("pyspark", "feast", "evidently")) for r in PYPROJECT["project"]["dependencies"])
    for stage, wanted in (("venv-main", "'.[feast,drift]'"), ("venv-spark", "'.[spark]'")):
        run = " ".join(v for i, v in by_stage[stage] if i == "RUN")
        assert f"pip install {wanted}" in run and "/docker/prune-venv.sh" in run, run
    assert "prune-spark-jars.sh" in " ".join(v for i, v in by_stage["venv-spark"] if i == "RUN")
    copies = {stage: [v for i, v in body if i == "COPY"] for stage, body in by_stage.items()}
    assert copies["runtime"] == ["--from=venv-main /opt/streamguard/venv /opt/streamguard/venv"]
    assert "--from=venv-spark /opt/streamguard/venv /opt/streamguard/venv" in copies["spark"]
    assert "default-jre-headless" in " ".join(v for i, v in by_stage["spark"] if i == "RUN")
    assert "default-jre-headless" not in " ".join(v for i, v in by_stage["runtime-base"] + by_stage["runtime"])
    assert by_stage["runtime"][0][1].startswith("runtime-base ") and by_stage["spark"][0][1].startswith("runtime-base ")
    assert any(i == "USER" for i, _ in by_stage["runtime"]) and any(i == "USER" for i, _ in by_stage["spark"])


def test_connector_jars_are_the_ones_the_stack_uses() -> None:
    maven = next(run for run in args_of("RUN") if "dependency:copy-dependencies" in run)
    assert "spark-connectors.pom.xml" in " ".join(c for copy in local_copies() for c in copy)
    included = re.search(r"-DincludeArtifactIds=(\S+)", maven)
    assert included is not None
    assert tuple(included.group(1).split(",")) == versions.SPARK_CONNECTOR_ARTIFACTS
    assert "-Dspark.version=${SPARK_VERSION}" in maven and "-Dmdep.stripVersion=true" in maven
    env = " ".join(args_of("ENV"))
    jars = re.search(r"STREAMGUARD_SPARK_JARS=(\S+)", env)
    assert jars is not None
    assert [Path(j).stem for j in jars.group(1).split(",")] == list(versions.SPARK_CONNECTOR_ARTIFACTS)


def test_runs_as_non_root_with_the_streamguard_entrypoint() -> None:
    user = args_of("USER")[-1]
    assert re.fullmatch(r"[1-9][0-9]*:[1-9][0-9]*", user), f"USER {user} is not a numeric non-root user"
    entrypoint = args_of("ENTRYPOINT")[-1]
    assert entrypoint.endswith('"streamguard"]')
    assert PYPROJECT["project"]["scripts"]["streamguard"] == "streamguard.cli:main"
    assert "default-jre-headless" in " ".join(args_of("RUN"))


def resolve(args: list[str]) -> click.Command:
    """The click command ``streamguard <args>`` runs, with its options parsed (unknown ones raise)."""
    command: click.Command = main
    ctx = click.Context(main, info_name="streamguard")
    while isinstance(command, click.Group) and args and not args[0].startswith("-"):
        sub = command.get_command(ctx, args[0])
        assert sub is not None, f"`streamguard ... {args[0]}` does not exist"
        command, args = sub, args[1:]
        ctx = click.Context(command, info_name=command.name, parent=ctx)
    command.make_context(command.name, list(args), parent=ctx, resilient_parsing=False)
    return command


@pytest.mark.parametrize("args", [
    ["operator", "run", "--help"],
    ["workload", "materialize", "--help"],
    ["workload", "stream", "--help"],
    ["workload", "drift", "--help"],
    ["serve", "--help"],
])
def test_the_image_entrypoints_exist(args: list[str]) -> None:
    with pytest.raises(click.exceptions.Exit) as exited:
        resolve(args)
    assert exited.value.exit_code == 0


def test_the_install_step_builds_a_package_with_every_entrypoint_and_no_development_tooling(tmp_path: Path) -> None:
    """Build the wheel the way the Dockerfile's `pip install .` does, from the whole source tree (not only the
    build context, which .dockerignore already trims): the package itself leaves the development tooling out."""
    context = tmp_path / "context"
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for rel in filter(None, listed.decode().split("\0")):
        if (REPO / rel).exists() or (REPO / rel).is_symlink():
            (context / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, context / rel, follow_symlinks=False)
    assert any((context / "streamguard").rglob("devstack/*.py")), "the tree copied holds the development tooling"
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"),
                             str(context)], capture_output=True, text=True, check=False, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    wheel = next((tmp_path / "dist").glob("streamguard-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in ("streamguard/cli.py", "streamguard/operator/cli.py", "streamguard/workloads/cli.py",
                   "streamguard/workloads/materialize/cli.py", "streamguard/workloads/streaming/cli.py",
                   "streamguard/workloads/drift/cli.py", "streamguard/serving/cli.py"):
        assert module in names, f"{module} is missing from the image's package"
    assert not [n for n in names if n.startswith(DEV_TOOLING)], "development tooling in the image's package"
    assert not any(n.startswith(("operator/", "workloads/", "serving/")) for n in names), \
        "top-level operator/ must not become an importable package"
