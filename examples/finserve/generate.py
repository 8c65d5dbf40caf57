"""Generate the FinServe sample data: ``python examples/finserve/generate.py --out .run/data/finserve``.

The generator lives in :mod:`streamguard.demo.finserve_data` (importable by tests and benchmarks).
"""

from streamguard.demo.finserve_data import main

if __name__ == "__main__":
    main()
