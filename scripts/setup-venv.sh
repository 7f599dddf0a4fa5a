# Sourced by the other scripts: create .venv if missing and install gva (+ extras given in $1).
# pip takes torch from the local wheel cache where one exists; the version range in pyproject.toml
# keeps it on the CPU-capable 2.14.1 line.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
.venv/bin/python -m pip install -q -e ".${1:-}"
export PATH="$PWD/.venv/bin:$PATH"
