"""Read the FinServe FeatureView and StreamingWindow manifests (``examples/finserve/*.yaml``)."""

from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import ValidationError

from streamguard.api.featureview import FeatureView
from streamguard.api.streamingwindow import StreamingWindow

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples" / "finserve"
"""The manifests in a source checkout."""


@dataclass
class Manifests:
    feature_views: dict[str, FeatureView] = field(default_factory=dict)
    windows: dict[str, StreamingWindow] = field(default_factory=dict)

    def window_for(self, view: str) -> StreamingWindow | None:
        """The StreamingWindow that fills ``view``, if any."""
        return next((w for w in self.windows.values() if w.spec.feature_view == view), None)


def load_manifests(folder: Path = EXAMPLES_DIR) -> Manifests:
    """Every FeatureView and StreamingWindow in ``folder/*.yaml``; other kinds are ignored.

    A document that does not validate raises ``ValueError`` naming the file and the resource."""
    found = Manifests()
    for path in sorted(folder.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not isinstance(doc, dict):
                continue
            name = str(doc.get("metadata", {}).get("name", "?"))
            try:
                if doc.get("kind") == "FeatureView":
                    found.feature_views[name] = FeatureView.model_validate(doc)
                elif doc.get("kind") == "StreamingWindow":
                    found.windows[name] = StreamingWindow.model_validate(doc)
            except ValidationError as error:
                raise ValueError(f"{path}: {doc.get('kind')} {name}: {error}") from error
    return found
