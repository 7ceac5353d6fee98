#!/usr/bin/env bash
# Regenerate the Python stubs of kubelite/proto/*.proto (needs the dev-only package grpcio-tools:
# .venv/bin/pip install grpcio-tools). The generated modules are checked in so that installing kubelite
# needs no code generator.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
"$PY" -m grpc_tools.protoc -I. --python_out=. --grpc_python_out=. --pyi_out=. kubelite/proto/runtime.proto
