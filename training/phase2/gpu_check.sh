#!/usr/bin/env bash
# Phase 2 on a lent CUDA machine, through the same code path as the CPU runs, at a larger scale
# (never run on a GPU yet; meant to stay within 10 minutes: 16 seeds per prompt, the CPU miniature 8-10).
#
#   bash training/phase2/gpu_check.sh            # on the GPU machine (DEVICE=cuda)
#   DEVICE=cpu SCALE=tiny bash training/phase2/gpu_check.sh   # the same script, seconds, on a CPU
#
# Needs the miniature world built here first (python -m training.miniature.run --out runs/miniature_p4),
# carried to the machine: $WORLD/base_pipeline, $WORLD/subject/X, $WORLD/subject.key and the
# miniature's watermark model (WATERMARK, below). diffusers, peft and lpips travel as wheels
# (see /work/.library/device/README.md); nothing is downloaded. Results land in $OUT (or runs/).
set -euo pipefail
cd "$(dirname "$0")/../.."
DEVICE=${DEVICE:-cuda}
SCALE=${SCALE:-full}
WORLD=${WORLD:-runs/miniature_p4}
WATERMARK=${WATERMARK:-$WORLD/watermark64_b16_t64_ae/model}
RESULTS=${OUT:-runs}/phase2_gpu_check
if [ "$SCALE" = tiny ]; then
  SIZES=(--train-steps 2 --n-train-prompts 2 --n-validation-prompts 1 --n-heldout-prompts 2 --images-per-prompt 1
         --heldout-images-per-prompt 2 --synth-steps 2 --finetune-steps 2 --methods lora)
else
  # The miniature's settings G (training/miniature/README.md: DreamBooth 1e-4 x 1,600, LoCon LoRA rank 16,
  # 2e-3 x 2,000), 16 seeds per prompt (64 held-out images per class), 50 DDIM steps.
  SIZES=(--override dreambooth.learning_rate=1e-4 --override dreambooth.train_steps=1600
         --override lora.learning_rate=2e-3 --override lora.train_steps=2000 --lora-rank 16
         --lora-targets transformer_conv --override textual_inversion.train_steps=1800
         --n-train-prompts 8 --n-validation-prompts 4 --n-heldout-prompts 4
         --images-per-prompt 16 --heldout-images-per-prompt 16 --synth-steps 50 --synth-batch-size 32
         --finetune-steps 300 --methods dreambooth lora textual_inversion)
fi
python - <<'PY'
import torch
print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
PY
start=$(date +%s)
gwm train phase2 --base "$WORLD/base_pipeline" --images "$WORLD/subject/X" --key-file "$WORLD/subject.key" \
  --model "$WATERMARK" --out "$RESULTS" --resolution 64 --instance-prompt "a painting in the style of <sks>" \
  --prompts "$WORLD/prompts.txt" --initializer-token painting \
  --device "$DEVICE" --mixed-precision auto "${SIZES[@]}"
echo "phase 2 on $DEVICE ($SCALE): $(( $(date +%s) - start )) s; report: $RESULTS/report.md"
