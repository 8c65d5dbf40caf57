"""A private redis-server for tests and benchmarks that flush, fill or restart Redis (never the stack's)."""

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from streamguard.devstack.supervisor import free_port


@contextmanager
def private_redis(workdir: Path, *options: str, port: int | None = None) -> Iterator[redis.Redis]:
    """A client of a redis-server of our own on ``port`` (default: a free one; give the same port to restart
    a server where its clients look for it), no persistence unless ``options`` ask."""
    binary = shutil.which("redis-server")
    if not binary:
        raise RuntimeError("redis-server is not installed (`streamguard dev provision` installs it)")
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
            *options,
        ],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.05)
        yield client
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=10)
