#!/usr/bin/env bash
# The tests: create .venv if missing, install gva with its test extras, run pytest.
#   bash scripts/test.sh            # everything (what CI runs)
#   bash scripts/test.sh -k curate  # any pytest arguments
set -euo pipefail
source "$(dirname "$0")/setup-venv.sh" "[test]"
exec python -m pytest "$@"
