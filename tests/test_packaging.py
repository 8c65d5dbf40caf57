"""The import root is ``streamguard``; the design card's top-level folders never shadow the stdlib."""

import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("flags", [[], ["-I"], ["-S"]], ids=["default", "isolated", "no-site"])
def test_repo_root_on_path_does_not_shadow_stdlib_operator(flags: list[str]) -> None:
    probe = "import sys; sys.path.insert(0, '.'); import operator; print(operator.__file__)"
    result = subprocess.run([sys.executable, *flags, "-c", probe], cwd=REPO, capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).parent == Path(sysconfig.get_paths()["stdlib"])


def test_design_card_folders_are_reached_through_streamguard() -> None:
    for folder in ("operator", "serving", "workloads"):
        assert not (REPO / folder / "__init__.py").exists(), f"{folder}/__init__.py would make it importable"
        assert (REPO / "streamguard" / folder).resolve() == (REPO / folder).resolve()
    result = subprocess.run([sys.executable, "-c", "import streamguard.operator, streamguard.serving, "
                             "streamguard.workloads"], cwd="/", capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_make_demo_can_build_before_the_virtualenv_exists() -> None:
    """``make demo`` runs ``python -m streamguard.devstack.prepare`` with the machine's Python while the virtualenv
    installs: that module and everything it imports must need nothing but the standard library."""
    probe = ("import sys; sys.path.insert(0, '.'); import streamguard.devstack.prepare; "
             "print(sorted({m.split('.')[0] for m in sys.modules} - set(sys.stdlib_module_names) - {'__main__'}))")
    result = subprocess.run([sys.executable, "-S", "-c", probe], cwd=REPO, capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['streamguard']"
