#!/bin/sh
# Drop from an installed virtualenv what no container ever runs or reads; each rule says why it is safe.
# Usage: prune-venv.sh VENV
set -eu
venv=$1
site=$(echo "$venv"/lib/python3*/site-packages)
before=$(du -sm "$venv" | cut -f1)

# Type checking: feast requires SQLAlchemy[mypy], which pulls mypy (60 MB) for SQLAlchemy's mypy plugin.
"$venv/bin/pip" uninstall -y -q mypy
# The dependencies' own test suites (pandas, scipy, sklearn, pyarrow, ...); not Evidently's `tests`
# packages: they are its data-quality tests, imported by `evidently` itself (evidently.legacy.tests).
find "$site" -depth -type d -name tests -path "$site/*/*" -not -path "$site/evidently/*" -exec rm -rf {} +
# C/C++ headers and Cython sources: for compiling extensions against these packages, never at run time.
find "$site" -type f \( -name '*.h' -o -name '*.hpp' -o -name '*.pxd' -o -name '*.pxi' -o -name '*.pyx' \
  -o -name '*.c' -o -name '*.cpp' \) -delete
find "$site" -depth -type d -empty -delete
# The kubernetes client's asyncio twin (kubernetes.aio, 70 MB): streamguard and kopf use the synchronous
# client only (kopf reads in-cluster credentials through `kubernetes.config`).
rm -rf "$site/kubernetes/aio"
# Notebook front-end extensions (plotly's and Evidently's JupyterLab/notebook assets): no Jupyter here.
rm -rf "$venv/share/jupyter" "$venv/etc/jupyter"
# The installers: the image never installs anything after this (pip uninstalls itself last).
"$venv/bin/pip" uninstall -y -q setuptools wheel 2>/dev/null || true
"$venv/bin/pip" uninstall -y -q pip
rm -f "$venv"/bin/pip*

"$venv/bin/python" -c 'import streamguard.cli, kubernetes.client, kubernetes.config'
# Every workload's modules import after pruning (the drift exporter's Evidently lost a module once).
if "$venv/bin/python" -c 'import evidently' 2>/dev/null; then
  "$venv/bin/python" -c 'import streamguard.workloads.drift.analysis'
fi
echo "[prune-venv] $venv: ${before} MB -> $(du -sm "$venv" | cut -f1) MB"
