r"""Spatial super-resolution on Moving Digits (Imagen Video's SSR): 16x16 -> 32x32 over 17 frames,
in pixel space; the lower resolution is 2x2 area averages of the ground truth, upsampled bilinearly.
4x4 patches keep 64 tokens per frame, as many as the base's latents have.

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
  c.dit.patch_size = (1, 4, 4)
  return c
