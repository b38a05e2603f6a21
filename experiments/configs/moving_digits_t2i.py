r"""Image pretraining of the Moving Digits text-to-video model (stage-wise training, as Open-Sora
and Wan train): the same text encoder and DiTs on images only, each example its video's first
latent frame (which the causal VAE encodes by itself), a ninth of a video's tokens.

Videos alone did not teach the DiTs the digit words (experiments/NOTES.md). Stage 1 starts on
one-digit images; stages 2 and 3 continue on all images, each with a fresh schedule (stage 3's
state is committed in experiments/resume/moving-digits-t2i, a bundle `init_from` reads):

  jaxgen train --config experiments/configs/moving_digits_t2i.py --workdir ~/jaxgen/runs/t2i \
    --config.num_steps=4500 --config.curriculum_steps=1500
  jaxgen train --config experiments/configs/moving_digits_t2i.py --workdir ~/jaxgen/runs/t2i_2 \
    --config.init_from=~/jaxgen/runs/t2i
  jaxgen train --config experiments/configs/moving_digits_t2i.py --workdir ~/jaxgen/runs/t2i_3 \
    --config.init_from=~/jaxgen/runs/t2i_2 --config.num_steps=4500
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(__file__))
import moving_digits_t2v  # noqa: E402


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  c = moving_digits_t2v.get_config(arg)
  runlocal = arg == "runlocal"
  c.description = c.description + " (image pretraining)"
  c.num_steps = 20 if runlocal else 5000
  c.batch_size = 8 if runlocal else 128
  c.video_batch_size = 0  # images only
  c.curriculum_steps = 0
  c.optim.warmup_steps = 5 if runlocal else 100
  # On images there are no direction words for the low-noise expert to flatten (see
  # moving_digits_t2v.py), and the digit's shape is decided at its levels: both train the encoder.
  c.text_encoder_experts = ("transformer", "transformer_2")
  return c
