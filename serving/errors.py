"""Errors of the lookup path, each mapped to one HTTP status by the app."""


class ServingError(Exception):
    status_code = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class UnknownFeatureError(ServingError):
    """A feature reference, view or feature set the catalog does not serve (400)."""

    status_code = 400


class EntityError(ServingError):
    """An entity row lacks a join key or has a value of the wrong type (422)."""

    status_code = 422


class BatchTooLargeError(ServingError):
    status_code = 413


class StoreUnavailableError(ServingError):
    """Redis could not be reached or did not answer in time (503)."""

    status_code = 503
