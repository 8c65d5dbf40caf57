"""The local stack's S3 identity: generated once, kept private, and published with exactly the keys the
operator's Secret references. Pure logic, no stack."""

import json
import stat
from pathlib import Path

from streamguard.devstack.objectstore import ensure_identity, secret_manifest
from streamguard.objectstore import SECRET_KEYS, Credentials


def test_identity_is_generated_once_private_and_matches_the_secret(tmp_path: Path) -> None:
    identity, config = ensure_identity(tmp_path / "seaweedfs")
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    again, _ = ensure_identity(tmp_path / "seaweedfs")
    assert again == identity
    credential = json.loads(config.read_text())["identities"][0]["credentials"][0]
    assert (credential["accessKey"], credential["secretKey"]) == (identity.access_key, identity.secret_key)
    assert identity.secret_key not in repr(identity)

    secret = secret_manifest("team", identity, "http://10.0.0.1:8333")
    assert secret["metadata"] == {**secret["metadata"], "name": "streamguard-object-store", "namespace": "team"}
    assert set(secret["stringData"]) == set(SECRET_KEYS.values())
    env = {variable: secret["stringData"][key] for variable, key in SECRET_KEYS.items()}
    credentials = Credentials.from_env(env)
    assert (credentials.endpoint, credentials.access_key, credentials.secret_key) == (
        "http://10.0.0.1:8333",
        identity.access_key,
        identity.secret_key,
    )
