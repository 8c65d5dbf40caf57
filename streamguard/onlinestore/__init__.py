"""Redis layouts of the online store: Feast's (batch views) and StreamGuard's window layout (streaming
views). Pure byte-level functions, no Feast import (``import feast`` costs seconds): unit tests prove
byte equality with Feast's own helpers."""
