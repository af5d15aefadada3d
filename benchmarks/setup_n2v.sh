#!/usr/bin/env bash
# A virtual environment for the Noise2Void rows: the project's packages (seen through
# --system-site-packages) plus CAREamics 0.3.5. Run from the repository root after
# `pip install torch==2.13.0 -e ".[benchmarks]"`; then run a benchmark with
# /opt/n2v/bin/python benchmarks/table.py ... (or VENV=other/path).
#
# CAREamics 0.3.5 pins torchvision<=0.26 (hence torch 2.11 with CUDA, several GB). With the
# CPU build of torch 2.13 we keep that torch and install CAREamics without its pins, with
# torchvision 0.28 (the release for torch 2.13). PyPI's torchvision is linked against
# CUDA torch, so its compiled ops cannot load here; N2V does not use them, so the two
# modules that register them are emptied in this environment only.
set -euo pipefail
VENV=${VENV:-/opt/n2v}
python -m venv --system-site-packages "$VENV"
"$VENV/bin/pip" install -q "bioimageio-core>=0.9,<=0.11.0" "lightning>=2.2,<=2.6.6,!=2.6.2,!=2.6.3" \
  "microssim<=0.0.5" "pydantic>=2.11,<=2.14.1" "scikit-image<=0.26.0" "torchmetrics<1.9" "zarr>=3,<4"
"$VENV/bin/pip" install -q --no-deps careamics==0.3.5 torchvision==0.28.0
if ! "$VENV/bin/python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() or '+cpu' not in torch.__version__ else 1)"; then
  tv=$("$VENV/bin/python" -c "import importlib.util as u; print(u.find_spec('torchvision').submodule_search_locations[0])")
  for f in _meta_registrations.py _autograd_registrations.py; do
    echo "# emptied by benchmarks/setup_n2v.sh: CPU-only torch cannot load torchvision's CUDA-linked ops" > "$tv/$f"
  done
fi
"$VENV/bin/python" -c "import careamics; print('careamics', careamics.__version__, 'ready in $VENV')"
