#!/usr/bin/env bash
# Runs as is on a machine with an NVIDIA GPU and a CUDA build of PyTorch (TensorRT optional):
# the torch backend in FP16 and FP32, and TensorRT when installed, each with the TFKT V2 reference.
# Usage: bash benchmarks/run_gpu.sh [tfkt-edge executable]   (default: tfkt-edge on PATH)
set -euo pipefail
tfkt=${1:-tfkt-edge}
out=benchmarks/results
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | tr 'A-Z ' 'a-z_' | sed 's/nvidia_//')
common=(--batch-sizes 1,8,16,32,64 --duration 2 --repeats 3 --slices 400 --e2e-batch 64 --workers 8)
"$tfkt" benchmark --backend torch --precision fp16 "${common[@]}" \
    --json "$out/benchmark_gpu_${gpu}_torch_fp16.json" --markdown "$out/benchmark_gpu_${gpu}_torch_fp16.md" \
    --plot "$out/benchmark_gpu_${gpu}_torch_fp16.png"
"$tfkt" benchmark --backend torch --precision fp32 --modes model-only "${common[@]}" \
    --json "$out/benchmark_gpu_${gpu}_torch_fp32.json" --markdown "$out/benchmark_gpu_${gpu}_torch_fp32.md"
if python3 -c "import tensorrt, pycuda" 2>/dev/null; then
    "$tfkt" export tensorrt --onnx tfkt_edge/assets/tfkt_edge_s.onnx --output "$out/../tfkt_edge_s.engine" --max-batch 64
    "$tfkt" benchmark --backend tensorrt --model "$out/../tfkt_edge_s.engine" --no-reference "${common[@]}" \
        --json "$out/benchmark_gpu_${gpu}_tensorrt.json" --markdown "$out/benchmark_gpu_${gpu}_tensorrt.md"
else
    echo "TensorRT or pycuda not installed: TensorRT not measured"
fi
