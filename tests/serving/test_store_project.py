"""The store project (:mod:`streamguard.onlinestore.tenancy`): injective, Feast-valid, and its ACL patterns admit
every key of one namespace and none of another's, whatever the entity values (pure)."""

import itertools
from fnmatch import fnmatchcase

import pytest

from streamguard.onlinestore.feast_layout import redis_key, serialize_entity_key
from streamguard.onlinestore.freshness import freshness_key, watermark_key
from streamguard.onlinestore.generation import coverage_key, generation_key
from streamguard.onlinestore.pane_layout import pane_key, pane_prefix
from streamguard.onlinestore.tenancy import acl_key_patterns, acl_setuser, split_store_project, store_project
from streamguard.onlinestore.window_layout import heartbeat_key

NAMESPACES = ["a", "b-a", "ab", "a-b", "team-a", "x-team-a", "default", "1", "d", "d-d"]
PROJECTS = ["streamguard", "a", "a_b", "b", "x_", "p1"]
VIEWS = ["profile", "a", "x-a", "account-realtime"]
ENTITIES = ["A1", "", "_a", "x_team-a", ":_a:", "sgw:p_a:", "streamguard_teamDa", "\u00e9"]


def _keys(namespace: str, project: str) -> list[bytes]:
    store = store_project(namespace, project)
    keys = [generation_key(store)]
    for view in VIEWS:
        keys += [heartbeat_key(store, view), freshness_key(store, view), coverage_key(store, view),
                 watermark_key(store, view)]
        for entity in ENTITIES:
            keys += [redis_key(store, {"account_id": entity}), redis_key(store, {"n": -7}),
                     pane_key(pane_prefix(store, view, "0123456789ab"), serialize_entity_key({"account_id": entity}))]
    return keys


def _admitted(key: bytes, patterns: list[str]) -> bool:
    """Redis' glob on a key (these patterns hold only ``*`` and literal characters, as fnmatch reads them)."""
    return any(fnmatchcase(key.decode("latin-1"), pattern) for pattern in patterns)


def test_store_project_is_injective_and_its_own_inverse() -> None:
    pairs = list(itertools.product(NAMESPACES, PROJECTS))
    stores = {store_project(n, p) for n, p in pairs}
    assert len(stores) == len(pairs)
    assert all(split_store_project(store_project(n, p)) == (n, p) for n, p in pairs)
    assert store_project("team-a", "streamguard") == "streamguard_teamDa"


def test_store_project_is_a_feast_project_name() -> None:
    from feast.repo_operations import is_valid_name

    for namespace, project in itertools.product(NAMESPACES, PROJECTS):
        store = store_project(namespace, project)
        assert is_valid_name(store) and "-" not in store, store


@pytest.mark.parametrize(("namespace", "project"), [("Team", "p"), ("a_b", "p"), ("-a", "p"), ("a", "P"),
                                                    ("a", "x-y"), ("a", "_x"), ("a" * 64, "p")])
def test_store_project_refuses_what_no_key_can_carry(namespace: str, project: str) -> None:
    with pytest.raises(ValueError):
        store_project(namespace, project)


def test_acl_patterns_admit_every_key_of_the_namespace_and_none_of_another() -> None:
    keys = {(n, p): _keys(n, p) for n, p in itertools.product(NAMESPACES, PROJECTS)}
    for namespace in NAMESPACES:
        patterns = acl_key_patterns(namespace, PROJECTS)
        for (owner, _), owned in keys.items():
            admitted = [key for key in owned if _admitted(key, patterns)]
            assert admitted == (owned if owner == namespace else []), (namespace, owner, admitted[:3])


def test_acl_patterns_admit_only_the_projects_listed() -> None:
    patterns = acl_key_patterns("team-a", ["streamguard"])
    assert not any(_admitted(k, patterns) for k in _keys("team-a", "other") if not k.endswith(b"_teamDa"))
    setuser = acl_setuser("team-a", "secret", "team-a", ["streamguard"])
    assert setuser[:4] == ["team-a", "reset", "on", ">secret"]
    assert "~*_teamDa" in setuser and "~sgp:streamguard_teamDa:*" in setuser and "-@dangerous" in setuser


def test_the_acl_command_prints_a_setuser_line_reading_the_password_from_the_shell() -> None:
    from click.testing import CliRunner

    from streamguard.onlinestore.cli import command

    done = CliRunner().invoke(command, ["acl", "team-a", "--project", "streamguard", "--project", "risk"])
    assert done.exit_code == 0, done.output
    line = done.output.strip()
    assert line.startswith("redis-cli ACL SETUSER streamguard-team-a reset on \">$PASSWORD\" '~*_teamDa' ")
    assert "'~sgp:risk_teamDa:*'" in line and "'~sg-cov:{streamguard_teamDa}:*'" in line and "PASSWORD\"" in line
    assert CliRunner().invoke(command, ["acl", "Team_A"]).exit_code != 0
