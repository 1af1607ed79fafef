#!/bin/sh
# Lint, type-check and run every test (lab tests need root; under CI=true they never skip).
set -eu
cd "$(dirname "$0")"
.venv/bin/ruff check src tests benchmarks
.venv/bin/mypy --strict src tests
# the benchmark scripts import each other by module name, as `benchmarks/run.py` runs them
MYPYPATH=benchmarks .venv/bin/mypy --strict benchmarks
exec .venv/bin/python -m pytest "$@"
