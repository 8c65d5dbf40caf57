"""The streaming benchmark's JIT figure (benchmarks/streaming/run.py): the compiler threads of a real JVM."""

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from benchmarks.streaming.run import jit_cpu_seconds, process_tree_cpu_seconds

SLEEPER = "class Sleeper { public static void main(String[] a) throws Exception { Thread.sleep(60_000); } }\n"


def test_the_jit_cpu_of_a_jvm_under_a_process_is_counted_and_part_of_its_cpu(tmp_path: Path) -> None:
    java = shutil.which("java")
    assert java is not None, "the benchmark measures a Spark JVM: java must be installed"
    source = tmp_path / "Sleeper.java"
    source.write_text(SLEEPER)
    # a launcher process with the JVM as its child, as the job's Python driver is the Spark JVM's parent
    launcher = subprocess.Popen(["sh", "-c", f"{java} -Xcomp {source}; exit 0"], start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        jit = 0.0
        while jit <= 0.1 and time.monotonic() < deadline:  # -Xcomp compiles every method before its first call
            time.sleep(0.5)
            jit = jit_cpu_seconds(launcher.pid)
        assert jit > 0.1
        assert jit <= process_tree_cpu_seconds(launcher.pid)
    finally:
        os.killpg(launcher.pid, signal.SIGKILL)  # the shell and its JVM
        launcher.wait()
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        assert jit_cpu_seconds(sleeper.pid) == 0.0  # no JVM, no JIT threads
    finally:
        sleeper.kill()
        sleeper.wait()
