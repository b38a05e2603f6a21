r"""The short recipe's image stage: three noise-level experts, the text encoder trained through
the middle one (t in [0.4, 0.8)) alone, 1x1 patches, local attention in the text encoder (window
2); one-digit images for 3,000 steps, then all images for 2,200. moving_digits_t2v_fast.py goes
on from it.

Why the middle expert: the digit is decided between t = 0.4 and 0.8 (experiments/NOTES.md).
Minute-scale probes (interval_probe.py --images --t-min 0.4 --t-max 0.8) learnt the digit words
there, while every two- and three-expert image run left them unused after 2,500 steps: in those the
text encoder learnt through every expert (trained through the middle one alone, swapping the digit
raised the loss by 3.2% at step 800, against -0.1% through all three). 1x1 patches (a token is a
4x4-pixel cell, a third of a glyph) learnt them faster per example than 2x2 in the probes.

Why window 2 (NOTES.md, "Binding"): a bidirectional encoder trained on images mixes the words
they need into every token's state, and the motion words' own states go with them. A fresh
high-noise expert over the bidirectional stage's encoder (2,000 steps) learnt no direction words
in 300 probe steps (+0.0% loss when swapped), and the video stage from it none in 800; over this
one's, +40.1%. And a bidirectional encoder does not bind (which digit goes with which colour):
on two-digit images, exchanging the digits between the phrases cost its stages nothing, this one
+4.1% after its 1,000 steps on all images. The window costs the digit words time: swapping the
digit on one-digit images at t = 0.6 costs +20.7% at step 3,000 (+22.2% for the bidirectional
stage at 2,000).

Why 2,200 steps on all images: they are cheap (0.6-0.77 steps/s, against 0.25 for the video
stage) and teach the digit words and their binding: judged as images, two-digit images' digits
26.0% / 37.8% / 44.7% after 1,000 / 1,600 / 2,200 of them, one-digit 60.0 / 74.4 / 81.6%.

5,200 steps took ~2.3 h here at 0.50-0.77 steps/s under tcmalloc.

  jaxgen train --config experiments/configs/moving_digits_t2i_three.py \
    --workdir ~/jaxgen/runs/t2i_three
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
  c.text.window = 2  # local attention: keeps each word's own state (see above)
  c.dit.patch_size = (1, 1, 1)
  c.batch_size = 6 if runlocal else 96  # 32 images per expert
  c.num_steps = 20 if runlocal else 5200
  c.curriculum_steps = 10 if runlocal else 3000  # one-digit images first, then all
  c.optim.end_lr_factor = 1.0  # constant after warmup, as in the probes
  return c
