r"""Temporal super-resolution on Moving Digits (Imagen Video's TSR): 2x the frame rate at 32x32, in
pixel space. The ground truth is the dataset rendered at twice its frame rate (34 frames, cut to
8-frame clips for training); the lower frame rate is its every second frame, repeated back. In
the cascade it turns the base's 17 frames into 34.

  jaxgen train --config experiments/configs/moving_digits_tsr.py --workdir ~/jaxgen/runs/tsr
  jaxgen train --config experiments/configs/moving_digits_tsr.py:runlocal --workdir /tmp/tsr
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402


def stage_base_config(arg: str, description: str) -> ml_collections.ConfigDict:
  """The fields both stage configs share; moving_digits_ssr.py reuses it."""
  runlocal = arg == "runlocal"
  c = common.base_config("superres", runlocal)
  c.description = description
  c.num_steps = 20 if runlocal else 1000
  c.batch_size = 8
  c.optim.lr = 1e-3
  c.optim.warmup_steps = 5 if runlocal else 50

  c.stage = ml_collections.ConfigDict({"temporal_factor": 1, "spatial_factor": 1})
  # The ground truth: Moving Digits at `scale`x the size and `rate`x the frame rate, in clips.
  c.data.scale, c.data.rate, c.data.clip_frames = 1, 1, None
  c.schedule = "cosine"  # LogSNRSchedule kind
  c.prediction_type = "v_prediction"  # Imagen Video §2.4
  c.weighting = "uniform"
  c.max_aug_level = 0.5  # training noise-augmentation levels a ~ U[0, max_aug_level]
  # The residual over naive upsampling is diffused times this, to unit std (StageConfig).
  c.residual_scale = 1.0
  c.caption_dropout = 0.1

  c.text = ml_collections.ConfigDict()
  c.text.width = 64 if runlocal else 128
  c.text.mlp_dim = 128 if runlocal else 256
  c.text.num_layers = 1
  c.text.num_heads = 2 if runlocal else 4

  c.dit = ml_collections.ConfigDict()
  c.dit.patch_size = (1, 4, 4)  # 64 tokens per 32x32 frame, as many as the base's latents have
  c.dit.num_layers = 2 if runlocal else 4
  c.dit.num_heads = 2 if runlocal else 4
  c.dit.head_dim = 32
  c.dit.ffn_dim = 128 if runlocal else 512
  c.dit.freq_dim = 64 if runlocal else 128
  c.dit.rope_max_seq_len = 64
  # Spatial-then-temporal attention: cost T·(HW)² + HW·T², and it carries over to the larger
  # inputs of the cascade (RoPE is relative).
  c.dit.attention = "factorized"
  c.dit.remat_policy = "none"

  c.sampling = ml_collections.ConfigDict()  # samples.png, and the bundle's defaults
  # Few steps: the lower stage leaves little to invent, and each step past the first trades PSNR
  # for sharpness. Held-out, 64 videos (jaxgen eval --model STAGE --sampler ddim --steps N), PSNR
  # at 1 / 2 / 4 / 8 steps: SSR 34.1 / 33.7 / 33.3 / 33.0 dB (DPM-Solver++(2M), 20 steps: 32.6;
  # naive 33.1); TSR (8,000 steps, 128 videos) 30.3 / 29.9 / 29.2 dB at 1 / 2 / 4 (naive 24.7).
  c.sampling.sampler = "ddim"
  c.sampling.num_steps = 2
  c.sampling.guidance_scale = 1.0  # the lower stage already carries the content
  c.sampling.aug_level = 0.1  # Ho et al. 2021 §4.3: a small fixed level at sampling
  return c


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  c = stage_base_config(arg, "Moving Digits TSR x2 frames (pixel space), trained by jaxgen")
  c.stage.temporal_factor = 2
  # RoPE's base as in the base model (moving_digits_t2v.py): at θ = 10⁴ only 2 of the 6 temporal
  # frequency pairs of a 32-wide head turn by more than a tenth of a radian from frame to frame;
  # the first TSR run (θ = 10⁴, no given-frame channel) did not learn the motion between frames.
  c.dit.rope_theta = 10.0
  # 2-step PSNR on 128 held-out videos: 26.6 dB at 2,000 steps, 28.3 at 4,000, 29.9 at 8,000 with
  # 4 layers; 29.3 at 4,000 with 6 (1 step: 29.8 against the 4-layer model's 30.3 at 8,000). Past
  # 8,000 steps the 4-layer model hardly gained (30.3 -> 30.7 dB by 12,000), so depth, not length.
  c.dit.num_layers = 2 if arg == "runlocal" else 6
  c.num_steps = 20 if arg == "runlocal" else 8000
  c.residual_scale = 7.5  # the residual's std: 0.13 (of 0.31 for the videos), on train videos
  # One DDIM step: the posterior mean of the in-between frames. Chosen with 4 layers on held-out
  # data seed 1 (128 videos; the README reports seed 0), 1 / 2 / 4 / 8 steps: PSNR 30.3 / 29.9 /
  # 29.2 / 28.5 dB, the oracle's per-frame digit accuracy 94.6 / 93.7 / 92.4 / 91.1%, objects on
  # the truth's path 91.8 / 91.0 / 90.2 / 89.1% of frames: every step past the first draws detail
  # the oracle reads worse (6 layers, 4,000 steps, seed 0: 29.8 dB at 1 step, 29.3 at 2).
  c.sampling.num_steps = 1
  c.data.rate = 2
  c.data.clip_frames = 6 if arg == "runlocal" else 8
  return c
