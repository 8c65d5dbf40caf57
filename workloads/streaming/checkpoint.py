"""The job's checkpoint location: a local folder, or ``s3a://bucket/prefix`` (also written ``s3://``) on an
S3-compatible object store. Spark checkpoints its queries there itself (``spark_location``; the ``s3a``
filesystem with the credentials of :mod:`streamguard.objectstore`, ``s3a_settings``); every read and write
the job makes itself under the checkpoint (Spark's offset logs it reads, ``start.json``, ``verdicts.json``)
goes through :class:`Checkpoint`.

An object store that cannot be reached raises :class:`CheckpointUnavailableError`: the job retries and makes
no progress meanwhile (``CheckpointUnavailable``), it never skips data or crashes for it.
"""

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from streamguard import objectstore

if TYPE_CHECKING:
    import pyarrow.fs as pafs

CHECKPOINT_SETTINGS = {
    "fs.s3a.retry.limit": "2",
    "fs.s3a.retry.interval": "500ms",
    "fs.s3a.attempts.maximum": "2",
    "fs.s3a.connection.establish.timeout": "5s",
    "fs.s3a.connection.timeout": "30s",
}
"""Spark's ``s3a`` gives up on an unreachable store within seconds (its defaults retry for minutes, with the
query blocked meanwhile): the failed batch commits nothing and the job restarts the query from the checkpoint
once the store answers."""

LOCAL_SETTINGS = {
    "spark.sql.streaming.checkpointFileManagerClass":
        "org.apache.spark.sql.execution.streaming.checkpointing.FileSystemBasedCheckpointFileManager",
}
"""A local checkpoint renames its files through Hadoop's ``FileSystem``, not its ``FileContext``: without Hadoop's
native library the latter runs a ``readlink`` process for each side of every rename (about 35 a batch of the
windows query, on its thread); a rename on a local disk is atomic either way. Spark reads the setting from the
Hadoop configuration."""


class CheckpointUnavailableError(RuntimeError):
    """The object store holding the checkpoint cannot be reached (or fails); the message holds no credential."""


def is_remote(location: str) -> bool:
    return location.startswith((objectstore.S3_SCHEME, objectstore.S3A_SCHEME))


def _as_s3(location: str) -> str:
    if location.startswith(objectstore.S3A_SCHEME):
        return objectstore.S3_SCHEME + location[len(objectstore.S3A_SCHEME):]
    return location


class Checkpoint:
    """Files under one checkpoint location, by path relative to it (``windows/offsets/3``, ``start.json``)."""

    def __init__(self, location: str) -> None:
        self.location = location.rstrip("/")
        self.remote = is_remote(location)
        self._at = objectstore.resolve(_as_s3(self.location))

    @property
    def filesystem(self) -> "pafs.FileSystem":
        return self._at.filesystem

    def spark_location(self, query: str) -> str:
        """Where Spark checkpoints ``query``: ``s3a://...`` on an object store, else a local folder."""
        if self.remote:
            return f"{objectstore.s3a_uri(_as_s3(self.location))}/{query}"
        return str(Path(self.location) / query)

    def spark_settings(self) -> dict[str, str]:
        """Hadoop settings Spark needs to checkpoint here: for a local folder, :data:`LOCAL_SETTINGS`."""
        if not self.remote:
            return dict(LOCAL_SETTINGS)
        if self._at.credentials is None:
            return {}
        return {**objectstore.s3a_settings(self._at.credentials), **CHECKPOINT_SETTINGS}

    def _path(self, relative: str) -> str:
        return f"{self._at.path}/{relative}" if relative else self._at.path

    def _unavailable(self, error: OSError) -> CheckpointUnavailableError:
        return CheckpointUnavailableError(f"checkpoint {self.location} unavailable: {self._at.describe_failure(error)}")

    def read_text(self, relative: str) -> str | None:
        """The file's text; ``None`` when there is none."""
        try:
            with self.filesystem.open_input_stream(self._path(relative)) as stream:
                return bytes(stream.read()).decode()
        except FileNotFoundError:
            return None
        except OSError as error:
            if not self.remote:
                raise
            if "not found" in str(error).lower() or "nosuchkey" in str(error).lower():
                return None
            raise self._unavailable(error) from error

    def write_text(self, relative: str, text: str) -> None:
        """Replace the file whole: a single PUT on an object store, a write and rename locally."""
        try:
            if self.remote:
                with self.filesystem.open_output_stream(self._path(relative)) as stream:
                    stream.write(text.encode())
                return
            path = Path(self._path(relative))
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".tmp")
            partial.write_text(text)
            partial.replace(path)
        except OSError as error:
            if not self.remote:
                raise
            raise self._unavailable(error) from error

    def names(self, relative: str) -> list[str]:
        """The names of the files directly under the folder ``relative`` (none when it does not exist)."""
        import pyarrow.fs as pafs

        try:
            found = self.filesystem.get_file_info(pafs.FileSelector(self._path(relative), allow_not_found=True))
        except OSError as error:
            if not self.remote:
                raise
            raise self._unavailable(error) from error
        return [Path(info.path).name for info in found if info.type == pafs.FileType.File]

    def remove(self, relative: str) -> None:
        """Delete the folder ``relative`` with everything under it (nothing when it does not exist)."""
        try:
            self.filesystem.delete_dir(self._path(relative))
        except FileNotFoundError:
            return
        except OSError as error:
            if not self.remote:
                raise
            if "not found" in str(error).lower() or "nosuchkey" in str(error).lower():
                return
            raise self._unavailable(error) from error

    def probe(self) -> None:
        """Raise :class:`CheckpointUnavailableError` unless the store answers (one cheap request; a local
        folder always answers)."""
        if self.remote:
            self.names("")


@functools.cache
def at(location: str) -> Checkpoint:
    """The checkpoint at ``location`` (one filesystem client per location and process)."""
    return Checkpoint(location)
