#!/usr/bin/env bash
# Training tokens/s and MFU of the SFT recipe at a 7B shape on one GPU, as one JSON line:
# random init (nothing downloaded), bf16, DeepSpeed ZeRO-2, PEFT LoRA r=16 on all linear layers,
# packed rows of 2048 tokens. No Ray, no pyarrow: runs from a bare checkout on a machine with
# torch, transformers and peft (docs/training.md, "GPU readiness").
#
#   bash scripts/gpu-bench.sh                      # 7B shape on the GPU
#   bash scripts/gpu-bench.sh --cpu --steps 2      # tiny shape on the CPU: checks the path
#   bash scripts/gpu-bench.sh --wheels DIR ...     # pip-install DeepSpeed (and its pure-Python
#                                                  # dependencies) from wheels carried in DIR first
# Other options go to `python -m raypipe.train.gpu_bench` (--micro-batch, --seq-len, --attn, ...).
set -euo pipefail
cd "$(dirname "$0")/.."

args=()
wheels=""
cpu=0
while [ $# -gt 0 ]; do
    case "$1" in
        --wheels) wheels="$2"; shift 2 ;;
        --cpu) cpu=1; args+=("$1"); shift ;;
        *) args+=("$1"); shift ;;
    esac
done
if [ "$cpu" = 1 ]; then
    export DS_ACCELERATOR=cpu
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if ! python -c "import deepspeed" >/dev/null 2>&1; then
    if [ -z "$wheels" ]; then
        echo "gpu-bench: error: DeepSpeed is not installed; pass --wheels DIR with its wheel(s)" >&2
        exit 2
    fi
    site="$(mktemp -d)"
    python -m pip install --quiet --no-index --no-deps --target "$site" "$wheels"/*.whl
    export PYTHONPATH="$PYTHONPATH:$site"
fi
exec python -m raypipe.train.gpu_bench --json "${args[@]}"
