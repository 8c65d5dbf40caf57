"""fsspec's ``s3`` protocol on pyarrow's S3 filesystem, for Feast's file offline store (it reads ``s3://``
sources through dask and fsspec).

fsspec's own ``s3`` is s3fs, whose botocore pins ``python-dateutil<3`` against the Kubernetes client's ``>=3``,
so it cannot be installed beside StreamGuard. :func:`install` registers this one instead, only when s3fs is
absent. It takes the storage options Feast passes (``key``, ``secret``, ``client_kwargs.endpoint_url``) and
otherwise the ``AWS_*`` variables of :mod:`streamguard.objectstore`.
"""

import importlib.util
import os
from dataclasses import replace
from typing import Any

import fsspec
from fsspec.implementations.arrow import ArrowFSWrapper

from streamguard import objectstore


class ObjectStoreFileSystem(ArrowFSWrapper):  # type: ignore[misc]
    protocol = "s3"

    def __init__(self, key: str = "", secret: str = "", client_kwargs: dict[str, Any] | None = None,
                 **options: Any) -> None:
        environ = dict(os.environ)
        if key and secret:
            environ.update({objectstore.ACCESS_KEY_ENV: key, objectstore.SECRET_KEY_ENV: secret})
        credentials = objectstore.Credentials.from_env(environ)
        endpoint = (client_kwargs or {}).get("endpoint_url")
        if endpoint:
            credentials = replace(credentials, endpoint=endpoint)
        super().__init__(objectstore.s3_filesystem(credentials), **options)

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        text = str(path)
        return text[len(objectstore.S3_SCHEME):] if text.startswith(objectstore.S3_SCHEME) else text


def install() -> None:
    """Serve ``s3://`` in fsspec from pyarrow, unless s3fs is installed."""
    if importlib.util.find_spec("s3fs") is None:
        fsspec.register_implementation("s3", ObjectStoreFileSystem, clobber=True)
