"""Redis layouts of the online store: Feast's (batch views), StreamGuard's window layout (streaming
views) and the generation/coverage contract that says when an absent key proves an empty value
(:mod:`streamguard.onlinestore.generation`). Pure byte-level functions, no Feast import (``import feast``
costs seconds): unit tests prove byte equality with Feast's own helpers."""
