r"""Video VAE for Moving Digits: the Wan 2.1 VAE at a tiny width, 4x spatial and 2x temporal
compression (17x32x32x3 frames -> 9x8x8x8 latents).

  jaxgen train --config experiments/configs/moving_digits_vae.py --workdir ~/jaxgen/runs/vae
  jaxgen train --config experiments/configs/moving_digits_vae.py:runlocal --workdir /tmp/vae

The shipped model's VAE then trains its decoder on, the encoder frozen so the latents stay as
they are (reconstructions of held-out videos: PSNR 27.3 -> 30.2 dB, digits read 90.2 -> 94.6%):

  jaxgen train --config experiments/configs/moving_digits_vae.py \
    --workdir ~/jaxgen/runs/vae_decoder --config.init_from=~/jaxgen/runs/vae \
    --config.optim.frozen='("encoder", "quant_conv")' --config.num_steps=8000 --config.optim.lr=1e-3
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  runlocal = arg == "runlocal"
  c = common.base_config("vae", runlocal)
  c.num_steps = 20 if runlocal else 4000
  c.batch_size = 12
  c.optim.lr = 2e-3
  c.optim.weight_decay = 0.0
  c.model = ml_collections.ConfigDict()
  c.model.base_dim = 4 if runlocal else 8
  c.model.z_dim = 8
  c.model.dim_mult = (1, 2, 4)  # two 2x downsamplings: 4x spatial
  c.model.num_res_blocks = 1
  c.model.attn_scales = ()
  c.model.temporal_downsample = (False, True)  # 2x temporal
  c.model.train_frames = 5 if runlocal else 9  # random clips of this many frames (4n + 1)
  c.model.kl_weight = 1e-4
  c.model.glyph_weight = 8.0  # extra L1/MSE weight on bright (digit) pixels
  return c
