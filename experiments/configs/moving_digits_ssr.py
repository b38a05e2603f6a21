r"""Spatial super-resolution on Moving Digits (Imagen Video's SSR): 32x32 -> 64x64, in pixel space.
The ground truth is the dataset rendered at twice its size (cut to 4-frame clips for training:
SSR is mostly a per-frame task, and temporal attention carries over to longer videos through
RoPE); the lower resolution is its 2x2 area averages, upsampled bilinearly. In the cascade it
turns the TSR stage's 34x32x32 into 34x64x64.

  jaxgen train --config experiments/configs/moving_digits_ssr.py --workdir ~/jaxgen/runs/ssr
  jaxgen train --config experiments/configs/moving_digits_ssr.py:runlocal --workdir /tmp/ssr
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(__file__))
import moving_digits_tsr  # noqa: E402


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  c = moving_digits_tsr.stage_base_config(
      arg, "Moving Digits SSR x2 size (pixel space), trained by jaxgen")
  c.stage.spatial_factor = 2
  c.data.scale = 2
  c.residual_scale = 20.0  # the residual's std: 0.05 (of 0.31 for the videos), on train videos
  c.data.clip_frames = 2 if arg == "runlocal" else 4
  c.batch_size = 4 if arg == "runlocal" else 8
  c.num_steps = 20 if arg == "runlocal" else 500  # 2x the tokens of a TSR step
  return c
