#!/usr/bin/env bash
# taskmill against the Python peers on Redis; see run.py for what is measured.
# Usage: bench/peers/run.sh [--jobs 10000] [--rounds 3] [--quick] [--only taskmill,huey]
# Needs Python 3.11 (python3.11, or $PYTHON) and redis-server on PATH; PyPI the first time.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-$(command -v python3.11 || command -v python3)}"
exec "$python" "$here/run.py" "$@"
