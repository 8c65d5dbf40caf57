"""The Feast repository generated from FeatureView specs: rendering, validation and the Feast CLI on it."""

import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml

from streamguard.api.featureview import FeatureViewSpec
from streamguard.feastrepo.config import render_online_store
from streamguard.feastrepo.repo import CONFIG_FILE, MODULE_FILE, SPECS_FILE, read_specs, render_repo, write_repo
from streamguard.finserve.resources import EXAMPLES_DIR, load_manifests


def _views() -> dict[str, FeatureViewSpec]:
    return {name: fv.spec for name, fv in load_manifests(EXAMPLES_DIR).feature_views.items()}


def _connection(url: str) -> str:
    return str(render_online_store(url)["connection_string"])


def test_online_store_settings() -> None:
    assert _connection("redis://127.0.0.1:6379/3") == "127.0.0.1:6379,db=3"
    assert _connection("redis://h") == "h:6379,db=0"
    secret = _connection("rediss://:s3cret@h:1/0")
    assert "s3cret" not in secret and secret == "h:1,db=0,password=${STREAMGUARD_REDIS_PASSWORD},ssl=true"
    assert _connection("redis://sg-ns:s3cret@h:1/0") == "h:1,db=0,username=sg-ns,password=${STREAMGUARD_REDIS_PASSWORD}"
    assert render_online_store("rediss://:s3cret@redis-cluster:6379?cluster=true") == {
        "type": "redis", "redis_type": "redis_cluster",
        "connection_string": "redis-cluster:6379,password=${STREAMGUARD_REDIS_PASSWORD},ssl=true"}
    with pytest.raises(ValueError, match="redis://"):
        render_online_store("http://h:1/0")
    with pytest.raises(ValueError, match="only database 0"):
        render_online_store("redis://h:1/2?cluster=true")


def test_render_is_pure_and_round_trips(tmp_path: Path) -> None:
    views = _views()
    rendered = render_repo("finserve", views, "redis://127.0.0.1:6379/0", tmp_path / "registry.db", tmp_path)
    assert rendered == render_repo("finserve", views, "redis://127.0.0.1:6379/0", tmp_path / "registry.db", tmp_path)
    config = yaml.safe_load(rendered.files[CONFIG_FILE])
    assert config["online_store"] == {"type": "redis", "connection_string": "127.0.0.1:6379,db=0"}
    assert config["offline_store"] == {"type": "file"} and config["entity_key_serialization_version"] == 3
    assert "GENERATED" in rendered.files[MODULE_FILE]
    write_repo(tmp_path / "repo", "finserve", views, "redis://127.0.0.1:6379/0", base_dir=tmp_path)
    assert read_specs(tmp_path / "repo" / SPECS_FILE) == (views, tmp_path.resolve())
    other = {**views, "x": views["customer-profile"].model_copy(update={"project": "other"})}
    with pytest.raises(ValueError, match=r"FeatureView x: spec\.project"):
        render_repo("finserve", other, "redis://h/0", tmp_path / "r.db", tmp_path)


def test_feast_objects_follow_the_specs(tmp_path: Path) -> None:
    from feast import Entity, FeatureView, FileSource
    from feast.types import Float64, Int64

    from streamguard.feastrepo.objects import feast_objects

    views = _views()
    objects = feast_objects(views, tmp_path)
    entities = {o.name: o for o in objects if isinstance(o, Entity)}
    assert {n: e.join_key for n, e in entities.items()} == {
        "customer": "customer_id",
        "account": "account_id",
        "merchant": "merchant_id",
    }
    fvs = {o.name: o for o in objects if isinstance(o, FeatureView)}
    assert set(fvs) == set(views)
    profile = fvs["customer-profile"]
    assert [f.name for f in profile.features] == [f.name for f in views["customer-profile"].features]
    assert {f.name: f.dtype for f in profile.features}["cust_txn_count_7d"] == Int64
    assert {f.name: f.dtype for f in profile.features}["cust_amount_avg_30d"] == Float64
    assert profile.ttl is not None and profile.ttl.total_seconds() == 2 * 86400
    assert isinstance(profile.batch_source, FileSource)
    assert profile.batch_source.path == str(tmp_path / ".run/data/finserve/offline/customer_profile")
    clash = {
        **views,
        "bad": views["customer-profile"].model_copy(
            update={"entities": [views["customer-profile"].entities[0].model_copy(update={"join_key": "cust"})]}
        ),
    }
    with pytest.raises(ValueError, match=r"spec\.entities\[customer\]"):
        feast_objects(clash, tmp_path)


def test_feast_plan_reads_the_generated_repository(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    write_repo(repo, "finserve", _views(), "redis://127.0.0.1:6379/0", base_dir=tmp_path)
    done = subprocess.run(
        [str(Path(sys.executable).parent / "feast"), "plan"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for name in ("customer-profile", "account-profile", "merchant-profile", "account-realtime"):
        assert f"Created feature view {name}" in done.stdout


def test_a_private_ca_file_reaches_feasts_redis_clients() -> None:
    """``ssl_ca_certs`` of the URL is a parameter of Feast's connection string, which Feast's own parser hands to
    redis-py's ``Redis``/``RedisCluster`` as the CA file; a path Feast would split (a comma) is refused."""
    from feast.infra.online_stores.redis import RedisOnlineStore

    ca = "/etc/streamguard/secrets/redis-ca/ca.crt"
    for url, cluster in ((f"rediss://:s3cret@h:1/0?ssl_ca_certs={ca}", False),
                         (f"rediss://:s3cret@h:1/0?cluster=true&ssl_ca_certs={ca}", True)):
        connection = _connection(url)
        assert connection.endswith(f",ssl=true,ssl_ca_certs={ca}") and ("db=0" in connection) != cluster
        nodes, options = RedisOnlineStore._parse_connection_string(connection)
        assert nodes == [{"host": "h", "port": "1"}] and options["ssl"] is True and options["ssl_ca_certs"] == ca
    with pytest.raises(ValueError, match="has a ',', which Feast's connection string cannot hold") as raised:
        render_online_store("rediss://:s3cret@h:1/0?ssl_ca_certs=/a,b/ca.crt")
    assert "s3cret" not in str(raised.value)


def test_a_sentinel_managed_store_is_feasts_redis_sentinel_through_every_sentinel() -> None:
    """Feast's own parser reads every sentinel and the master's options from the generated connection string."""
    from feast.infra.online_stores.redis import RedisOnlineStore

    config = render_online_store("rediss://app:s3cret@s1/2?sentinel=store&sentinels=s2:26380,s3")
    assert config == {"type": "redis", "redis_type": "redis_sentinel", "sentinel_master": "store",
                      "connection_string": "s1:26379,s2:26380,s3:26379,db=2,username=app,"
                                           "password=${STREAMGUARD_REDIS_PASSWORD},ssl=true"}
    nodes, options = RedisOnlineStore._parse_connection_string(config["connection_string"])
    assert nodes == [{"host": "s1", "port": "26379"}, {"host": "s2", "port": "26380"}, {"host": "s3", "port": "26379"}]
    assert options == {"db": 2, "username": "app", "password": "${STREAMGUARD_REDIS_PASSWORD}", "ssl": True}
    with pytest.raises(ValueError, match="a Redis Cluster has no Redis Sentinel"):
        render_online_store("redis://s1?sentinel=store&cluster=true")
    asked = render_online_store("redis://:s3cret@s1/0?sentinel=store&sentinel_auth=true")["connection_string"]
    assert RedisOnlineStore._parse_connection_string(asked)[1] == {
        "db": 0, "password": "${STREAMGUARD_REDIS_PASSWORD}",
        "sentinel_kwargs": {"password": "${STREAMGUARD_REDIS_PASSWORD}"}}
    for url in ("redis://:s3cret@s1/2?sentinel=store&sentinels=[fd00::2]:26380", "redis://:s3cret@[fd00::1]:6379/0"):
        with pytest.raises(ValueError, match="cannot hold the IPv6 address fd00::") as raised:
            render_online_store(url)
        assert "s3cret" not in str(raised.value)


def test_writing_a_repository_here_refuses_a_ca_file_that_is_not_here(tmp_path: Path) -> None:
    """A URL copied from a pod names the pod's CA path: refused with what to do, not Feast's later "No such file";
    with the CA copied here and named, the repository names it."""
    from click.testing import CliRunner

    from streamguard.feastrepo.cli import command

    pods = "/etc/streamguard/secrets/redis-ca/ca.crt"
    args = ["render", "--repo", str(tmp_path / "repo"), "--redis-url"]
    refused = CliRunner().invoke(command, [*args, f"rediss://:s3cret@redis:6380/0?ssl_ca_certs={pods}"])
    assert refused.exit_code == 2 and not (tmp_path / "repo").exists()
    assert f"ssl_ca_certs {pods!r} is not a file on this machine" in refused.output and "s3cret" not in refused.output
    here = tmp_path / "ca.crt"
    here.write_text("-----BEGIN CERTIFICATE-----\n")
    written = CliRunner().invoke(command, [*args, f"rediss://:s3cret@redis:6380/0?ssl_ca_certs={here}"])
    assert written.exit_code == 0, written.output
    assert f"ssl_ca_certs={here}" in (tmp_path / "repo" / CONFIG_FILE).read_text()
    assert "reads the Redis password from $STREAMGUARD_REDIS_PASSWORD" in written.output
    bad = CliRunner().invoke(command, [*args, "redis://:a,b@redis:6379/0"])
    assert bad.exit_code == 1 and "Feast cannot read its password back" in bad.output and "a,b" not in bad.output


@pytest.mark.parametrize(("password", "sentinel_auth", "read_back"), [
    ("s3cret", True, True), ("12345", True, True), ("p@ss/wo:rd x'y", True, True), ('a"b', False, True),
    ("a,b", False, False), ('a"b', True, False), ("true", False, False), ("a #b", False, False),
    ("a: b", False, False),
])
def test_a_password_feast_would_read_back_changed_is_refused(password: str, sentinel_auth: bool,
                                                             read_back: bool) -> None:
    """Feast expands the password into its file's text, splits the connection string at ',' and reads each value
    as JSON: a password that would reach Redis changed is refused up front, without showing it."""
    from feast.infra.online_stores.redis import RedisOnlineStore

    url = f"redis://:{quote(password, safe='')}@h:1/0{'?sentinel=m&sentinel_auth=true' if sentinel_auth else ''}"
    if not read_back:
        with pytest.raises(ValueError, match="Feast cannot read its password back") as raised:
            render_online_store(url)
        assert password not in str(raised.value)
        return
    text = yaml.safe_dump(render_online_store(url)).replace("${STREAMGUARD_REDIS_PASSWORD}", password)
    options = RedisOnlineStore._parse_connection_string(yaml.safe_load(text)["connection_string"])[1]
    assert str(options["password"]) == password
    assert not sentinel_auth or options["sentinel_kwargs"] == {"password": password}
