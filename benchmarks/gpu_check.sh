#!/usr/bin/env bash
# Every GPU check of tfkt-edge in one run of about 6-8 minutes, for a 16-core host with one NVIDIA GPU
# whose python3 has a CUDA build of PyTorch and onnxruntime (pydicom, its JPEG plugins and nvImageCodec
# can come as wheels in .whl/). It runs:
#   1. the tests marked cuda, nvimgcodec or tensorrt (they skip, saying why, where a piece is missing);
#   2. benchmarks/calling_process.py with 15 decoding processes, 2000 files: the calling process's CPU per slice;
#   3. benchmarks/gpu_throughput.py end to end, torch FP16 batch 64, 15 workers: 3000 uncompressed
#      files and 300 JPEG 2000 files, threads and processes, and processes with nvImageCodec decoding.
# Results go to $OUT (or /tmp/tfkt-gpu-check): gpu.txt, gpu_tests.log, calling_process_gpu_host.json,
# gpu_throughput_<gpu>.json, gpu_check.log.
#
# Wheels for a host without network, fetched where pip works (Python 3.12, CUDA 13):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
#     pydicom==3.0.2 pylibjpeg==2.1.0 pylibjpeg-openjpeg==2.6.0 pylibjpeg-libjpeg==2.4.0 pylibjpeg-rle==2.2.0 \
#     typer==0.29.2 rich==15.0.0 nvidia-nvimgcodec-cu13==0.9.0.20 nvidia-nvjpeg2k-cu13==0.11.0.51
# (about 37 MB). Usage, from the repository root: bash benchmarks/gpu_check.sh
set -uo pipefail
out=${OUT:-/tmp/tfkt-gpu-check}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
exec > >(tee "$out/gpu_check.log") 2>&1
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site || exit 1
fi
python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . || exit 1  # tfkt_edge.train maps onto train/
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
nproc | tee -a "$out/gpu.txt"
python3 -c "import torch, onnxruntime, pydicom; print('torch', torch.__version__, 'ort', onnxruntime.__version__, 'pydicom', pydicom.__version__)"
python3 -c "from tfkt_edge.dicom.gpu_decoding import enable_gpu_decoding; print('GPU decoding:', enable_gpu_decoding().detail)"

echo "== 1. GPU tests"
timeout 180 python3 -m pytest -q -rs -p no:cacheprovider -m "cuda or nvimgcodec or tensorrt" tests 2>&1 | tee "$out/gpu_tests.log"

echo "== 2. the calling process's CPU per slice, 15 decoding processes"
timeout 120 python3 benchmarks/calling_process.py --slices 2000 --workers 15 --rounds 3 --json "$out/calling_process_gpu_host.json"

echo "== 3. end to end, torch FP16"
timeout 270 python3 benchmarks/gpu_throughput.py --skip model-only --slices 3000 --j2k-slices 300 --workers 15 \
    --e2e-batch 64 --repeats 2 --out "$out"
echo "== done"
