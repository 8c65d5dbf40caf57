"""Where offline data lives: ``s3://bucket/prefix`` on an S3-compatible object store, or a local path
(development only). The one place the materializer and the drift exporter open offline data.

Credentials reach a workload through environment variables the operator fills from a Secret by
``secretKeyRef`` (:data:`SECRET_KEYS`); the Secret's *name* travels alongside in
:data:`SECRET_NAME_ENV` so failures can name it. No credential ever appears in a message this module
builds: :meth:`Credentials.scrub` removes them from the text of errors raised by the S3 client.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow.fs as pafs

S3_SCHEME = "s3://"
S3A_SCHEME = "s3a://"
"""How Spark (hadoop-aws) names the same objects."""

DATE_PARTITION = "date"
"""Hive partition column of offline tables partitioned by day (``.../date=2026-10-27/part-0.parquet``): the
UTC day of the rows' event timestamp, so readers of an interval skip the folders of other days."""

SECRET_NAME_ENV = "STREAMGUARD_OBJECT_STORE_SECRET"
ENDPOINT_ENV = "AWS_ENDPOINT_URL"
REGION_ENV = "AWS_REGION"
ACCESS_KEY_ENV = "AWS_ACCESS_KEY_ID"
SECRET_KEY_ENV = "AWS_SECRET_ACCESS_KEY"
SECRET_KEYS: dict[str, str] = {
    ENDPOINT_ENV: "endpoint",
    REGION_ENV: "region",
    ACCESS_KEY_ENV: "accessKeyId",
    SECRET_KEY_ENV: "secretAccessKey",
}
"""Environment variable -> key of the object-store Secret it is read from."""
DEFAULT_REGION = "us-east-1"


class ObjectStoreError(RuntimeError):
    """The workload has no credentials for an ``s3://`` location; the message names the Secret they should
    come from."""


@dataclass(frozen=True)
class Credentials:
    endpoint: str
    """``http://host:port`` or ``https://host:port``; empty means AWS itself."""
    region: str
    access_key: str
    secret_key: str
    secret_name: str
    """Where they came from, for messages: ``Secret 'name'`` or ``the environment``."""

    def __repr__(self) -> str:
        return f"Credentials(endpoint={self.endpoint!r}, region={self.region!r}, secret={self.secret_name!r})"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Credentials":
        env = os.environ if environ is None else environ
        secret = env.get(SECRET_NAME_ENV, "")
        where = f"Secret {secret!r}" if secret else "the environment"
        missing = [f"{SECRET_KEYS[name]} ({name})" for name in (ACCESS_KEY_ENV, SECRET_KEY_ENV) if not env.get(name)]
        if missing:
            raise ObjectStoreError(
                f"no object-store credentials: {', '.join(missing)} not set from {where} "
                "(is the Secret missing, or does it lack the key?)"
            )
        return cls(
            endpoint=env.get(ENDPOINT_ENV, ""),
            region=env.get(REGION_ENV) or DEFAULT_REGION,
            access_key=env[ACCESS_KEY_ENV],
            secret_key=env[SECRET_KEY_ENV],
            secret_name=where,
        )

    def scrub(self, text: str) -> str:
        for value in (self.secret_key, self.access_key):
            if value:
                text = text.replace(value, "***")
        return text


def is_remote(location: str) -> bool:
    return location.startswith(S3_SCHEME)


ENVIRONMENT_CREDENTIALS_PROVIDER = "software.amazon.awssdk.auth.credentials.EnvironmentVariableCredentialsProvider"


def s3a_uri(location: str) -> str:
    """``s3://bucket/prefix`` as Spark's ``s3a://bucket/prefix``; a local path unchanged."""
    return S3A_SCHEME + location[len(S3_SCHEME):] if is_remote(location) else location


def s3a_settings(credentials: Credentials) -> dict[str, str]:
    """Hadoop settings for Spark's ``s3a://`` on the store of ``credentials``. The keys stay out of them: the
    AWS SDK reads ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` from the JVM's environment."""
    settings = {
        "fs.s3a.aws.credentials.provider": ENVIRONMENT_CREDENTIALS_PROVIDER,
        "fs.s3a.endpoint.region": credentials.region,
    }
    if credentials.endpoint:
        scheme, _, _ = credentials.endpoint.rpartition("://")
        settings.update(
            {
                "fs.s3a.endpoint": credentials.endpoint,
                "fs.s3a.path.style.access": "true",  # S3-compatible stores serve bucket/key, not bucket.host
                "fs.s3a.connection.ssl.enabled": "false" if scheme == "http" else "true",
            }
        )
    return settings


def s3_filesystem(credentials: Credentials, allow_bucket_creation: bool = False) -> "pafs.S3FileSystem":
    import pyarrow.fs as pafs

    scheme, _, host = credentials.endpoint.rpartition("://")
    return pafs.S3FileSystem(
        access_key=credentials.access_key,
        secret_key=credentials.secret_key,
        region=credentials.region,
        endpoint_override=host or None,
        scheme=scheme or "https",
        connect_timeout=5,
        request_timeout=30,
        allow_bucket_creation=allow_bucket_creation,
    )


@dataclass(frozen=True)
class Location:
    """A resolved location: the filesystem to read it with and the path inside that filesystem."""

    filesystem: "pafs.FileSystem"
    path: str
    uri: str
    """What the user wrote (resolved against the base folder when local), for messages."""
    credentials: Credentials | None = None

    def scrub(self, text: str) -> str:
        return self.credentials.scrub(text) if self.credentials else text

    def describe_failure(self, error: BaseException) -> str:
        """An error of the filesystem as a message: credentials removed, the Secret named when remote."""
        text = self.scrub(str(error))
        if self.credentials is None:
            return text
        store = self.credentials.endpoint or "AWS"
        return f"{text} (object store {store}, credentials from {self.credentials.secret_name})"

    def exists(self) -> bool:
        """Whether anything is at the path (a file, or a folder / prefix with objects under it)."""
        import pyarrow.fs as pafs

        return bool(self.filesystem.get_file_info(self.path).type != pafs.FileType.NotFound)


def resolve(location: str, base_dir: Path | None = None, environ: Mapping[str, str] | None = None) -> Location:
    """``s3://bucket/prefix`` with the credentials of the environment, or a local path taken relative to
    ``base_dir`` (default: the working directory)."""
    import pyarrow.fs as pafs

    if is_remote(location):
        credentials = Credentials.from_env(environ)
        return Location(s3_filesystem(credentials), location[len(S3_SCHEME):].rstrip("/"), location, credentials)
    path = Path(location)
    if not path.is_absolute():
        path = (base_dir or Path.cwd()) / path
    return Location(pafs.LocalFileSystem(), str(path), str(path))
