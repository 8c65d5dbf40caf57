"""Generate the FinServe sample data: ``python examples/finserve/generate.py --out .run/data/finserve``.

The generator lives in :mod:`streamguard.finserve.generate` (importable by tests and benchmarks).
"""

from streamguard.finserve.generate import main

if __name__ == "__main__":
    main()
