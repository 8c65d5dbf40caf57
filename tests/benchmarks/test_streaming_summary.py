"""The streaming benchmark's summary over runs (benchmarks/streaming/run.py): medians per rate and the ratios."""

from typing import Any

from benchmarks.streaming.run import Phase, medians, ratios


def phase(rate: float, served: list[float], sustained: bool = True, cpu_rate: float | None = 100.0) -> dict[str, Any]:
    p = Phase(rate, 30.0, produced=int(rate * 30), freshness_s=served, redis_freshness_s=[s - 0.5 for s in served],
              sustained=sustained, events_per_job_cpu_second=cpu_rate, job_batch_seconds_mean=1.0)
    return p.summary()


def test_medians_are_per_rate_over_the_runs_that_reached_it() -> None:
    runs = [
        [phase(10, [1.0, 2.0]), phase(5000, [3.0], sustained=False)],
        [phase(10, [3.0, 4.0])],
        [phase(10, [5.0, 6.0]), phase(5000, [7.0], cpu_rate=None)],
    ]
    low, high = medians(runs)
    assert (low["target_rate"], low["runs"], low["sustained_runs"]) == (10, 3, 3)
    assert low["freshness_p99_s"] == 4.0  # each run's p99 is its max: 2, 4, 6
    assert low["redis_freshness_p99_s"] == 3.5
    assert (high["runs"], high["sustained_runs"]) == (2, 1)
    assert high["freshness_p50_s"] == 5.0
    assert high["events_per_job_cpu_second"] == 100.0  # the run without a figure is left out


def test_ratios_say_how_many_times_better_this_design_is() -> None:
    baseline = medians([[phase(10, [4.0]), phase(20000, [9.0], cpu_rate=50.0)]])
    current = medians([[phase(10, [2.0]), phase(20000, [3.0])]])
    assert ratios(baseline, current) == {
        "10/s": {"freshness_p95": 2.0, "freshness_p99": 2.0, "batch_seconds_mean": 1.0,
                 "events_per_job_cpu_second": 1.0, "events_per_cpu_second": None},
        "20000/s": {"freshness_p95": 3.0, "freshness_p99": 3.0, "batch_seconds_mean": 1.0,
                    "events_per_job_cpu_second": 2.0, "events_per_cpu_second": None},
    }
