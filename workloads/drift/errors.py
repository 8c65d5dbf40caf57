"""The one error type of a drift run: bad input, reported in status and logs, retried next interval."""


class DriftInputError(Exception):
    """A drift run cannot proceed; ``reason`` is a condition reason, ``field`` the spec field to fix."""

    def __init__(self, reason: str, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.reason = reason
        self.field = field
        self.message = message


REASONS = (
    "NoFeatures",
    "FeatureUnknown",
    "FeatureNotNumeric",
    "ReferenceUnavailable",
    "CurrentUnavailable",
    "TimestampFieldMissing",
    "TimestampFieldInvalid",
    "FeatureMissing",
    "ReferenceEmpty",
    "CurrentWindowEmpty",
    "FeatureEmpty",
    "EvidentlyFailed",
    "RunFailed",
    "StatusWriteFailed",
)
"""Every reason a run can fail with (error counter label, ``Drifted`` condition reason)."""
