#!/usr/bin/env bash
# Every GPU check in one call (GPU tests, throughput, quality per GPU minute), for a machine
# on which GPU time is short. Run from the repository root on the GPU machine, with the
# BSD68 folder given (default .gpu/bsd68_gray inside the checkout) and wheels of missing
# pure-Python packages (mrcfile) in .whl:
#     bash benchmarks/gpu_checks.sh [BUDGET_SECONDS] [BSD68_FOLDER]
# Results go to benchmarks/results/*gpu*.json and, bundled, to $OUT/gpu.tar.
set -u
BUDGET=${1:-60}
BSD68=${2:-.gpu/bsd68_gray}
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src:/tmp/site:${PYTHONPATH:-}"
start=$SECONDS
ls .whl/*.whl >/dev/null 2>&1 && python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv
python3 -c "import torch, platform; print('torch', torch.__version__, torch.cuda.get_device_name(), 'python', platform.python_version())"
section() { echo; echo "=== $1 (t=$((SECONDS - start)) s)"; }

section "GPU tests: blind spot in mixed precision, CUDA training and inference match the CPU"
timeout 120 python3 -m pytest -q -m gpu -p no:cacheprovider tests/test_blindspot.py tests/test_train_infer.py 2>&1 | tail -5

section "throughput per preset, roofline, peak memory (light, the GPU default)"
timeout 150 python3 benchmarks/throughput.py --device cuda --widths tiny,light,paper --memory --memory-width light --name throughput_gpu

section "end to end: ssdn denoise of a 4096^2 image and a 512 x 1024 x 1024 volume (tiny), peak GPU memory"
timeout 300 python3 benchmarks/throughput.py --device cuda --end-to-end --widths tiny --e2e-side 4096 \
    --e2e-volume 512x1024x1024 --name e2e_gpu 2>&1 | tail -3

section "training batch sweep"
timeout 90 python3 benchmarks/throughput.py --device cuda --widths tiny,light --train-shapes 4x64,8x128,16x128,4x256 --name throughput_gpu_batches

# Quality per GPU minute: all 68 BSD68 images, sigma 25 learned, BUDGET seconds each.
run_table() {
    local name=$1; shift
    section "BSD68 68 images, sigma 25, ${BUDGET} s: $name"
    timeout $((BUDGET + 120)) python3 benchmarks/table.py --data "$BSD68" --noise gaussian --level 25 \
        --budget "$BUDGET" --rows learned --quiet --name "gpu_bsd68_gaussian25_${BUDGET}s_$name" "$@" 2>&1 | tail -4
}
run_table light_4x64 --init none
run_table light_8x128 --init none --batch 8 --patch 128
run_table tiny_warm_8x128 --width tiny --init generic --batch 8 --patch 128
if (( SECONDS - start < 420 - BUDGET - 40 )); then
    run_table light_16x128 --init none --batch 16 --patch 128
fi
section "done"
tar -cf "$OUT/gpu.tar" benchmarks/results/*gpu*.json 2>/dev/null
