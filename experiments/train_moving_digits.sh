#!/usr/bin/env bash
# Reproduces the shipped `moving-digits` model: dataset, video VAE, latents and their statistics,
# text-to-video DiT + text encoder, and the bundle in jaxgen/zoo/weights/moving-digits/.
#
#   experiments/train_moving_digits.sh [RUNS_DIR]     (default ~/jaxgen/runs)
#
# Every stage is resumable: rerunning the script continues each training from its latest
# checkpoint and skips what is already done. JAXGEN_DATA_DIR sets the dataset directory
# (default ~/jaxgen/data). On a 2-core CPU: dataset ~1 min, VAE ~35 + 37 min, latents ~3 min,
# image stages ~1 h each (1.4 steps/s at batch 128), video stages 74 + 48 + 69 + 30 + 74 + 98 +
# 30 + 36 + 38 min (0.9-1.4 steps/s at batch 64).
set -euo pipefail
cd "$(dirname "$0")/.."
source experiments/use_tcmalloc.sh  # 1.36x the steps/s on 2 CPU cores (bench_malloc.py)
RUNS="${1:-$HOME/jaxgen/runs}"
CONFIGS=experiments/configs
OUT=jaxgen/zoo/weights/moving-digits

# 1. The dataset (20k train / 1k test videos, array_record), built once.
python -c "from jaxgen.data import moving_digits_tfds as t; import os; \
t.builder(os.environ.get('JAXGEN_DATA_DIR', os.path.expanduser('~/jaxgen/data'))).download_and_prepare()"

# 2. The video VAE; then its decoder trained on with the encoder frozen (as Stable Diffusion's
#    ft-MSE VAE was), which leaves the latents, and so every DiT trained on them, as they are;
#    and the oracle's accuracy on its reconstructions of held-out videos.
python -m jaxgen train --config "$CONFIGS/moving_digits_vae.py" --workdir "$RUNS/vae"
python -m jaxgen train --config "$CONFIGS/moving_digits_vae.py" --workdir "$RUNS/vae_decoder" \
  --config.init_from="$RUNS/vae" --config.optim.frozen='("encoder", "quant_conv")' \
  --config.num_steps=8000 --config.optim.lr=1e-3
if [ ! -s "$RUNS/vae_decoder/oracle.json" ]; then
  python -m jaxgen.train.export vae-eval --config "$CONFIGS/moving_digits_vae.py" \
    --workdir "$RUNS/vae_decoder" > "$RUNS/vae_decoder/oracle.json.tmp"
  mv "$RUNS/vae_decoder/oracle.json.tmp" "$RUNS/vae_decoder/oracle.json"
  cat "$RUNS/vae_decoder/oracle.json"
fi

# 3. Text encoder + DiTs on the VAE's latents (encoded into $RUNS/vae/latents on first use, with
#    the per-channel latent mean/std in stats.json), stage-wise as Open-Sora and Wan train: images
#    first (each video's first latent frame, a ninth of its tokens), one-digit ones for the first
#    1,500 steps; two more image runs, each from the last with a fresh schedule; then eight runs on
#    videos and images jointly (32 of each per batch) with the text encoder frozen (its gradient
#    stopped; in the eighth, its weights also kept from AdamW's weight decay), the last three at
#    lower peak learning rates with slower EMA; and a ninth on two-digit videos and images only,
#    with the text encoder training again. The shipped model's runs before the eighth ran while
#    weight decay still reached the biases and norm scales of scanned layer stacks (fixed since),
#    so a rerun takes a slightly different path.
VAE=(--config.vae.workdir="$RUNS/vae_decoder" --config.vae.latents_dir="$RUNS/vae/latents")
python -m jaxgen train --config "$CONFIGS/moving_digits_t2i.py" --workdir "$RUNS/t2i" "${VAE[@]}" \
  --config.num_steps=4500 --config.curriculum_steps=1500
python -m jaxgen train --config "$CONFIGS/moving_digits_t2i.py" --workdir "$RUNS/t2i_2" "${VAE[@]}" \
  --config.init_from="$RUNS/t2i"
python -m jaxgen train --config "$CONFIGS/moving_digits_t2i.py" --workdir "$RUNS/t2i_3" "${VAE[@]}" \
  --config.init_from="$RUNS/t2i_2" --config.num_steps=4500
VIDEO=(--config.batch_size=64 --config.video_batch_size=32 --config.text_encoder_experts='()')
python -m jaxgen train --config "$CONFIGS/moving_digits_t2v.py" --workdir "$RUNS/t2v" "${VAE[@]}" \
  "${VIDEO[@]}" --config.init_from="$RUNS/t2i_3" --config.num_steps=4000
python -m jaxgen train --config "$CONFIGS/moving_digits_t2v.py" --workdir "$RUNS/t2v_2" "${VAE[@]}" \
  "${VIDEO[@]}" --config.init_from="$RUNS/t2v" --config.num_steps=2500 --config.curriculum_steps=0
# The third run starts from the second's bundle (its EMA weights, float16, as weights and EMA).
python -m jaxgen.train.export bundle --config "$CONFIGS/moving_digits_t2v.py" \
  --workdir "$RUNS/t2v_2" --out "$RUNS/t2v_2/bundle" "${VAE[@]}"
python -m jaxgen train --config "$CONFIGS/moving_digits_t2v.py" --workdir "$RUNS/t2v_3" "${VAE[@]}" \
  "${VIDEO[@]}" --config.init_from="$RUNS/t2v_2/bundle" --config.num_steps=5000 \
  --config.curriculum_steps=0
python -m jaxgen train --config "$CONFIGS/moving_digits_t2v.py" --workdir "$RUNS/t2v_4" "${VAE[@]}" \
  "${VIDEO[@]}" --config.init_from="$RUNS/t2v_3" --config.num_steps=2000 --config.curriculum_steps=0
python -m jaxgen train --config "$CONFIGS/moving_digits_t2v.py" --workdir "$RUNS/t2v_5" "${VAE[@]}" \
  "${VIDEO[@]}" --config.init_from="$RUNS/t2v_4" --config.num_steps=6000 --config.curriculum_steps=0
python -m jaxgen train --config "$CONFIGS/moving_digits_t2v.py" --workdir "$RUNS/t2v_6" "${VAE[@]}" \
  "${VIDEO[@]}" --config.init_from="$RUNS/t2v_5" --config.num_steps=8000 --config.curriculum_steps=0 \
  --config.optim.lr=4e-4 --config.ema_decay=0.9995
python -m jaxgen train --config "$CONFIGS/moving_digits_t2v.py" --workdir "$RUNS/t2v_7" "${VAE[@]}" \
  "${VIDEO[@]}" --config.init_from="$RUNS/t2v_6" --config.num_steps=2500 --config.curriculum_steps=0 \
  --config.optim.lr=1.5e-4 --config.optim.warmup_steps=100 --config.ema_decay=0.9995
python -m jaxgen train --config "$CONFIGS/moving_digits_t2v.py" --workdir "$RUNS/t2v_8" "${VAE[@]}" \
  "${VIDEO[@]}" --config.init_from="$RUNS/t2v_7" --config.num_steps=3000 --config.curriculum_steps=0 \
  --config.optim.lr=1e-4 --config.optim.warmup_steps=100 --config.ema_decay=0.9995 \
  --config.optim.frozen='("text_encoder",)'
# The ninth: two-digit videos only (every remaining error was in them: a digit drawn as the
# other's, or lost), with the text encoder training again, through both experts.
python -m jaxgen train --config "$CONFIGS/moving_digits_t2v.py" --workdir "$RUNS/t2v_9" "${VAE[@]}" \
  --config.batch_size=64 --config.video_batch_size=32 \
  --config.text_encoder_experts='("transformer", "transformer_2")' --config.init_from="$RUNS/t2v_8" \
  --config.num_steps=3000 --config.curriculum_steps=3000 --config.curriculum_digits=2 \
  --config.optim.lr=1e-4 --config.optim.warmup_steps=100 --config.ema_decay=0.9995

# 4. The bundle (EMA weights, float16 storage), and its oracle evaluation.
python -m jaxgen.train.export bundle --config "$CONFIGS/moving_digits_t2v.py" \
  --workdir "$RUNS/t2v_9" --out "$OUT" "${VAE[@]}"
python -m jaxgen eval --model "$OUT" --num-videos 256 --output "$RUNS/t2v_9/oracle.json"
