r"""A faster start on the digit words: image pretraining with three noise-level experts, the text
encoder trained through the middle one (t in [0.4, 0.8)) alone, 1x1 patches, one-digit images.

Why: the digit is decided between t = 0.4 and 0.8 (experiments/NOTES.md). Minute-scale probes
(interval_probe.py --images --t-min 0.4 --t-max 0.8) learnt the digit words there, while every
two- and three-expert image run left them unused after 2,500 steps: in those the text encoder
learnt through every expert. Trained through the middle expert alone, it made this run's loss rise
by 3.2% at step 800 when the digit was swapped, against -0.1% through all three; 1x1 patches (a
token is a 4x4-pixel cell, a third of a glyph) learnt them faster per example than 2x2 in the
probes.

Not a recipe yet: this run (2,000 steps, 28 min) draws the prompted digit on 46.4% of 125 one-digit
images (2,500 steps of moving_digits_t2i.py: 11%, chance); 1,000 more on all images
(--config.init_from=~/jaxgen/runs/t2i_three --config.num_steps=1000 --config.curriculum_steps=0,
14 min) 37.2% of all (two-digit: 21.4%). Its encoder has not learnt the direction words, which the
high-noise expert reads; 1,300 steps of videos from it (67 min) did not teach them either, at 8
videos per expert (direction 11.2% of 128 videos, digit 31.0%; experiments/NOTES.md; the last command below,
stopped at step 1,300); moving_digits_t2v_fast.py goes on from there.

  jaxgen train --config experiments/configs/moving_digits_t2i_three.py \
    --workdir ~/jaxgen/runs/t2i_three
  python -m jaxgen.train.export bundle --config experiments/configs/moving_digits_t2i_three.py \
    --workdir ~/jaxgen/runs/t2i_three --out /tmp/t2i_three
  jaxgen eval --model /tmp/t2i_three --frames 1 --num-videos 256
  jaxgen train --config experiments/configs/moving_digits_t2v_three.py \
    --workdir ~/jaxgen/runs/t2v_equal --config.init_from=$HOME/jaxgen/runs/t2i_three \
    --config.dit.patch_size='(1,1,1)' --config.text.causal=False --config.batch_size=64 \
    --config.video_batch_size=24 --config.optim.end_lr_factor=1.0 --config.num_steps=3000
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(__file__))
import moving_digits_t2i  # noqa: E402


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  c = moving_digits_t2i.get_config(arg)
  runlocal = arg == "runlocal"
  c.boundary_ratio_2 = 0.4
  c.text_encoder_experts = ("transformer_2",)
  c.text.causal = False
  c.dit.patch_size = (1, 1, 1)
  c.batch_size = 6 if runlocal else 96  # 32 images per expert
  c.num_steps = 20 if runlocal else 2000
  c.curriculum_steps = c.num_steps  # one-digit images throughout
  c.optim.end_lr_factor = 1.0  # constant after warmup, as in the probes
  return c
