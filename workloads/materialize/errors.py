"""The one error the materializer reports: it names the FeatureView and the field at fault."""


class MaterializeError(Exception):
    """A run that cannot (or must not) write; ``reason`` becomes the ``Materialized`` condition's reason."""

    def __init__(self, view: str, field: str, message: str, reason: str) -> None:
        super().__init__(f"FeatureView {view}: {field}: {message}")
        self.view = view
        self.field = field
        self.reason = reason
