#!/usr/bin/env bash
# The tests: create .venv if missing, install gva with its test extras, lint (ruff), type-check
# (mypy), run pytest.
#   bash scripts/test.sh            # everything (what CI runs)
#   bash scripts/test.sh -k curate  # any pytest arguments
set -euo pipefail
source "$(dirname "$0")/setup-venv.sh" "[test]"
if [ $# -eq 0 ]; then   # the whole suite (CI) starts with the linter and the type checker: pyproject.toml
  ruff check src tests benchmarks   # [tool.ruff]
  mypy                              # [tool.mypy]: src/gva
fi
exec python -m pytest "$@"
