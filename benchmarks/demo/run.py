"""Repeat-demo check (issue 20, point 3): ``demo up`` -> ``demo up`` -> ``demo down`` -> ``demo up``, each run
timed, and after each ``up`` a fraud burst on a fresh account checked against the served window features
(``txn_count_1m`` equal to the burst's size, ``amount_sum_1m`` and ``amount_max_1m`` equal to its sums).

It runs the ``streamguard demo`` commands ``make demo`` / ``make demo-down`` run, with the same directories
(``STREAMGUARD_RUN_DIR``, ``STREAMGUARD_DEMO_DIR`` or their defaults), so when no stack runs there the
first ``up`` starts it and ``down`` stops it, as for a user. It prints each run's time and what the demo said
about the earlier state (reused or reset), and writes ``benchmarks/results/demo-repeat.json``.

    .venv/bin/python benchmarks/demo/run.py [--keep]    # --keep: leave the last demo running
"""

import argparse
import json
import math
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from streamguard.demo import live  # noqa: E402
from streamguard.demo.burst import send_burst  # noqa: E402
from streamguard.demo.run import kube_for, load_state  # noqa: E402
from streamguard.devstack.machine import machine_facts  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "demo-repeat.json"
STREAMGUARD = str(Path(sys.executable).parent / "streamguard")
BURST = 20
STATE_WORDS = ("reusing", "afresh", "reset to the example", "started the stack", "imported", "already on the node")


def run(command: str) -> dict[str, Any]:
    """``streamguard demo <command>``, its output echoed; its time, exit code and the lines about state."""
    started = time.monotonic()
    process = subprocess.Popen([STREAMGUARD, "demo", command], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    lines = []
    assert process.stdout is not None
    for line in process.stdout:
        print(line, end="", flush=True)
        lines.append(line.rstrip())
    code = process.wait()
    seconds = round(time.monotonic() - started, 1)
    if code != 0:
        raise SystemExit(f"streamguard demo {command} failed with code {code} after {seconds}s")
    return {"command": f"streamguard demo {command}", "seconds": seconds,
            "said": [line for line in lines if any(word in line for word in STATE_WORDS)]}


def check_values() -> dict[str, Any]:
    """A burst on a fresh account shows in the served window features with exactly its count and sums."""
    state = load_state()
    _, endpoints = kube_for(state)
    account = f"A8{uuid.uuid4().int % 10**5:05d}"
    burst = send_burst(endpoints, state.topic, state.subject, account, BURST)
    sent = time.monotonic()
    served: dict[str, Any] | None = None
    while time.monotonic() - sent < 120:
        served = live.served_vector(state.serving_url, account)
        if served and (served.get("txn_count_1m") or 0) >= BURST:
            break
        time.sleep(0.2)
    seconds = round(time.monotonic() - sent, 1)
    expected = {"txn_count_1m": BURST, "amount_sum_1m": sum(e["amount"] for e in burst),
                "amount_max_1m": max(e["amount"] for e in burst)}
    got = {name: served.get(name) if served else None for name in expected}
    correct = got["txn_count_1m"] == BURST and all(
        isinstance(seen, int | float) and math.isclose(seen, expected[name], rel_tol=1e-9)
        for name, seen in got.items())
    print(f"burst of {BURST} on {account}: served {got} after {seconds}s -> {'correct' if correct else 'WRONG'}")
    return {"account": account, "expected": expected, "served": got, "correct": correct,
            "burst_to_served_s": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="Leave the last demo running.")
    args = parser.parse_args()
    facts = machine_facts()
    measured_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    steps = []
    for command in ("up", "up", "down", "up"):
        print(f"== streamguard demo {command}", flush=True)
        step = run(command)
        if command == "up":
            step["values"] = check_values()
        steps.append(step)
    if not args.keep:
        steps.append(run("down"))
    RESULTS.write_text(json.dumps({
        "benchmark": "demo-repeat", "measured_at": measured_at,
        "machine": {**facts, "load_average_at_end": os.getloadavg()}, "steps": steps,
        "all_correct": all(step["values"]["correct"] for step in steps if "values" in step),
    }, indent=2) + "\n")
    print("\n| command | seconds | values |\n|---|---|---|")
    for step in steps:
        values = step.get("values")
        print(f"| {step['command']} | {step['seconds']} | "
              f"{'-' if values is None else ('correct' if values['correct'] else 'WRONG')} |")
    print(f"written: {RESULTS}")
    if not all(step["values"]["correct"] for step in steps if "values" in step):
        raise SystemExit("a demo run served wrong values")


if __name__ == "__main__":
    main()
