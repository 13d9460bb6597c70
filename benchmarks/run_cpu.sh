#!/usr/bin/env bash
# The committed CPU figures: ONNX Runtime, the edge model beside the TFKT V2 reference,
# model-only and end to end (300 real CT files). Run from the repository root after `make install`.
set -euo pipefail
out=benchmarks/results
.venv/bin/tfkt-edge benchmark --full --backend onnxruntime --batch-sizes 1,8,32 --duration 3 --repeats 3 --slices 300 \
    --json "$out/benchmark_cpu.json" --markdown "$out/benchmark_cpu.md" --plot "$out/benchmark_cpu.png" "$@"
