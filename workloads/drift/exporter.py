"""The exporter loop: run once at start and then every interval; never exit on bad input."""

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from kubernetes import client

from streamguard.api.durations import parse_duration
from streamguard.jobspec import DriftJob
from streamguard.workloads.drift.analysis import DriftResult, analyse
from streamguard.workloads.drift.errors import DriftInputError
from streamguard.workloads.drift.metrics import DriftMetrics
from streamguard.workloads.drift.plan import DriftPlan, plan
from streamguard.workloads.drift.slices import load_slice
from streamguard.workloads.drift.status import StatusWriter, render_status

log = logging.getLogger("streamguard.drift")


def run_drift(job: DriftJob, drift_plan: DriftPlan) -> DriftResult:
    """Load both slices and compare them (raises ``DriftInputError`` on bad input)."""
    columns = drift_plan.features
    reference = load_slice(job.monitor.reference, columns, "reference")
    current = load_slice(job.monitor.current, columns, "current")
    return analyse(reference, current, drift_plan)


@dataclass
class Exporter:
    job: DriftJob
    metrics: DriftMetrics
    status: StatusWriter | None
    """None: metrics only (no API server), e.g. ``--no-status``."""

    @classmethod
    def create(cls, job: DriftJob, api: client.ApiClient | None) -> "Exporter":
        return cls(job, DriftMetrics(_plan_or_placeholder(job)), StatusWriter(api) if api else None)

    @property
    def interval_seconds(self) -> float:
        return parse_duration(self.job.monitor.interval).total_seconds()

    def run_once(self) -> DriftResult | DriftInputError:
        """One run: compute, publish gauges, write status. Errors are reported, not raised."""
        drift_plan = self.metrics.plan
        started = time.monotonic()
        outcome: DriftResult | DriftInputError
        try:
            outcome = run_drift(self.job, plan(self.job))
        except DriftInputError as error:
            outcome = error
        except Exception as error:  # a run must never take the exporter down
            log.exception("%s: drift run failed unexpectedly", drift_plan.ref)
            outcome = DriftInputError("RunFailed", "spec", f"unexpected {type(error).__name__}: {error}")
        elapsed = time.monotonic() - started
        if isinstance(outcome, DriftResult):
            self.metrics.observe(outcome, elapsed, time.time())
            log.info(
                "%s: drift share %.3f (%d/%d features drifted: %s) in %.2fs",
                drift_plan.ref,
                outcome.drift_share,
                len(outcome.drifted_features),
                len(outcome.scores),
                ", ".join(outcome.drifted_features) or "none",
                elapsed,
            )
        else:
            self.metrics.failed(outcome.reason, elapsed)
            log.error("%s: %s: %s: %s", drift_plan.ref, outcome.reason, outcome.field, outcome.message)
        self._write_status(drift_plan, outcome)
        return outcome

    def _write_status(self, drift_plan: DriftPlan, outcome: DriftResult | DriftInputError) -> None:
        if self.status is None:
            return
        try:
            live = self.status.read(drift_plan)
            if live is None:
                log.warning("%s not found; status not written", drift_plan.ref)
                return
            body = render_status(drift_plan, outcome, live, datetime.now(UTC), self.job.monitor.interval)
            self.status.apply(body)
        except Exception as error:  # API server down or RBAC missing: report, retry next run
            self.metrics.failed("StatusWriteFailed", 0.0)
            log.error("%s: StatusWriteFailed: writing status: %s", drift_plan.ref, error)

    def serve_forever(self, stop: threading.Event) -> None:
        """Run now and then every interval (measured start to start) until ``stop`` is set."""
        while not stop.is_set():
            started = time.monotonic()
            self.run_once()
            stop.wait(max(0.0, self.interval_seconds - (time.monotonic() - started)))


def _plan_or_placeholder(job: DriftJob) -> DriftPlan:
    """The plan for labelling metrics; a spec error still yields labels so the error can be counted."""
    try:
        return plan(job)
    except DriftInputError:
        spec = job.monitor
        return DriftPlan(
            namespace=job.namespace,
            monitor=job.name,
            view=job.view_name,
            generation=job.generation,
            numerical=(),
            categorical=(),
            ks_features=(),
            psi_threshold=spec.thresholds.psi,
            ks_p_value=spec.thresholds.ks_p_value,
            drift_share=spec.thresholds.drift_share,
        )
