#!/usr/bin/env bash
# One prepared GPU session: MFU at GPT-2-small shape, a short `--preset gpu` training, and
# bench_scale on CUDA. Run from the repository root on a CUDA machine:
#
#     OUT=/tmp/gpu_out DATA=path/to/en_ewt-ud-dev.conllu bash bench/gpu_session.sh
#
# About 6.5 minutes on one H200 (bench/RESULTS.md). Writes log.txt and the JSON results to $OUT.
# Where the machine lacks the project's pure-Python dependencies (conllu, transformer-lens, …),
# put their wheels in .whl/ (see bench/RESULTS.md, GPU section): they are installed to /tmp/site.
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_out}
DATA=${DATA:-../shared/data/ud_english_ewt/en_ewt-ud-dev.conllu}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
  export PYTHONPATH=/tmp/site:$(pwd)
else
  export PYTHONPATH=$(pwd)
fi
stratascope() { $PY -c "import sys; from app.cli import main; sys.exit(main(sys.argv[1:]))" "$@"; }
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
  echo "=== gpu_check $(date +%T)"
  timeout 230 $PY bench/gpu_check.py --out "$OUT/gpu_check.json" --steps 20 --warmup 6
  echo "=== preset gpu training (short) $(date +%T)"
  rm -rf /tmp/runs/gpu
  timeout 200 stratascope train --preset gpu --out /tmp/runs/gpu --steps 300 --set data.n_sentences=100000 \
      --set train.eval_interval=100 --set train.checkpoint_interval=300 --no-progress
  cp /tmp/runs/gpu/metrics.jsonl "$OUT/train_metrics.jsonl" 2>/dev/null
  cp /tmp/runs/gpu/results.json "$OUT/train_results.json" 2>/dev/null
  echo "=== bench_scale cuda $(date +%T)"
  timeout 260 $PY bench/bench_scale.py --device cuda --stages extract,default --data "$DATA" --work /tmp/scale
  cp bench/results/scale_cuda.json "$OUT/" 2>/dev/null
  echo "=== done $(date +%T)"
} > "$OUT/log.txt" 2>&1
tail -c 6000 "$OUT/log.txt"
