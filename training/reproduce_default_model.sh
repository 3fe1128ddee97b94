#!/usr/bin/env bash
# Rebuild resources/models/default from scratch, exactly as shipped (about 70 CPU-minutes on 2 cores).
# Needs ../shared/data (portraits, paintings) and the dev extras (scikit-image).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=../shared/data
python -m training.export_skimage_samples runs/data/skimage
# Phase 1. The shipped run was started as `--steps 2000 --warmup-steps 700 --threads 2`, stopped at
# step 200 (CPU contention) and resumed from that checkpoint with the settings below.
gwm train phase1 --data "$SHARED/portraits" --data runs/data/skimage --out runs/phase1_main \
  --steps 1200 --warmup-steps 500 --checkpoint-every 100 --threads 1 --resume latest
# Phase 1b: the detector, tuned on real exports under full-resolution distortions (G unchanged).
gwm train phase1b --model runs/phase1_main/model --data "$SHARED/portraits" --data runs/data/skimage \
  --out runs/tune_main --steps 400 --batch-size 12 --max-images 300 --threads 1
rm -rf resources/models/default && cp -r runs/tune_main/model resources/models/default
# Calibration bank (calibration split: never trained on, never evaluated on).
GWM_THREADS=1 gwm eval --calibrate --model resources/models/default --data "$SHARED/portraits" --data runs/data/skimage --max-images 200
# Evaluation figures, recorded in the manifest (eval split of the portraits; all paintings: never trained on).
GWM_THREADS=1 gwm eval --model resources/models/default --data "$SHARED/portraits" --max-images 100 --record-as portraits_eval_split
GWM_THREADS=1 gwm eval --model resources/models/default --data "$SHARED/paintings" --split all --record-as paintings
