"""The checkpoint seam (``workloads/streaming/checkpoint.py``) on a local folder and what it hands Spark for an
object store, and the progress rules while the checkpoint's store is away. Pure logic, no stack; the object
store itself is exercised by test_checkpoint_outage.py."""

from pathlib import Path

import pytest

from streamguard.objectstore import ACCESS_KEY_ENV, ENDPOINT_ENV, SECRET_KEY_ENV, ObjectStoreError
from streamguard.workloads.streaming.checkpoint import CHECKPOINT_SETTINGS, LOCAL_SETTINGS, Checkpoint, is_remote
from streamguard.workloads.streaming.progress import CHECKPOINT_UNAVAILABLE, DeadLetterRate, ProgressTracker

T = 1_767_225_600_000


def test_a_local_checkpoint_reads_writes_and_lists_files(tmp_path: Path) -> None:
    checkpoint = Checkpoint(str(tmp_path / "ck"))
    assert not checkpoint.remote and checkpoint.spark_settings() == LOCAL_SETTINGS
    assert checkpoint.spark_location("windows") == str(tmp_path / "ck" / "windows")
    assert checkpoint.read_text("start.json") is None and checkpoint.names("windows/offsets") == []
    checkpoint.write_text("windows/offsets/0", "v1")
    checkpoint.write_text("windows/offsets/0", "v1\n{}")
    checkpoint.write_text("windows/offsets/1", "v1")
    assert checkpoint.read_text("windows/offsets/0") == "v1\n{}"
    assert sorted(checkpoint.names("windows/offsets")) == ["0", "1"]
    checkpoint.probe()


def test_an_object_store_checkpoint_gives_spark_s3a_without_the_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENDPOINT_ENV, "http://127.0.0.1:8333")
    monkeypatch.setenv(ACCESS_KEY_ENV, "AKID")
    monkeypatch.setenv(SECRET_KEY_ENV, "SHHH")
    assert is_remote("s3a://b/p") and is_remote("s3://b/p") and not is_remote("/var/lib/ck")
    for location in ("s3a://bucket/ck/ns/name/", "s3://bucket/ck/ns/name"):
        checkpoint = Checkpoint(location)
        assert checkpoint.spark_location("windows") == "s3a://bucket/ck/ns/name/windows"
        settings = checkpoint.spark_settings()
        assert settings["fs.s3a.endpoint"] == "http://127.0.0.1:8333"
        assert CHECKPOINT_SETTINGS.items() <= settings.items()
        assert not {"AKID", "SHHH"} & set(settings.values())


def test_an_object_store_checkpoint_without_credentials_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ACCESS_KEY_ENV, raising=False)
    monkeypatch.delenv(SECRET_KEY_ENV, raising=False)
    with pytest.raises(ObjectStoreError, match="no object-store credentials"):
        Checkpoint("s3a://bucket/ck")


def test_an_away_checkpoint_store_stops_progress_and_says_so() -> None:
    tracker = ProgressTracker(None, T, DeadLetterRate(0.01, 60_000))
    tracker.started()
    tracker.checkpoint_error = "checkpoint s3a://b/ck unavailable: refused (no progress until it is back)"
    assert not tracker.healthy(T)
    assert tracker.condition(T) == ("False", CHECKPOINT_UNAVAILABLE, tracker.checkpoint_error)
    assert tracker.health(T) == ("failing", tracker.checkpoint_error)
    tracker.committed = {0: 5}
    tracker.on_end_offsets(T, {0: 5}, T)  # caught up with the topic, but nothing can be checkpointed
    assert tracker.record(T).progress_at_ms is None
    tracker.checkpoint_error = None
    tracker.on_end_offsets(T + 1000, {0: 5}, T + 1000)
    assert tracker.condition(T + 1000) is None and tracker.record(T + 1000).progress_at_ms == T + 1000
