r"""The video stage after moving_digits_t2i_three.py: its middle and low-noise experts (1x1
patches) and text encoder go on, while the high-noise expert starts afresh with 2x2 patches and
two thirds of the videos.

Why: from the image stage's weights with equal shares (8 videos per expert per step), 1,300
steps left the direction words unlearnt (direction 11.2%, chance 12.5%); probes on t >= 0.8
learnt them within 300 steps at 32 videos per step with 2x2 patches, not at 8. The high-noise
expert reads only where the digits are and where they go: at 2x2 patches (144 tokens a video
against 576) 32 videos cost it less than 8 cost at 1x1. Images go to the two lower experts,
which decide the digit. The text encoder learns through the high and the middle experts: through
the high one alone, the fresh expert's gradient moved the digit words under the middle one.

The curriculum (one-digit videos for the first 600 steps, from moving_digits_t2v.py) fills the
high-noise expert's rows alone (curriculum_experts): it learns the direction words from one-digit
videos first, while the lower experts, which decide the digit and bind it to its colour, see all
videos from the start; a curriculum for them undid the image stage's binding. Over the window-2
image stage's encoder the direction words come within 300 steps: swapping one raised the loss at
t = 0.95 by +22.3% / +77.1% after 300 / 600 steps (over an encoder trained bidirectionally first:
+0.0% / +0.9%, and +0.2% at 800), and exchanging the two digits on two-digit images at t = 0.6 by
+10.0% / +8.6% (experiments/NOTES.md, "Binding"). The figures of earlier variants of this stage,
all from bidirectional image stages, are there too.

Not a recipe yet: from the 5,200-step image stage, after 1,890 steps (2 h 25 min at 0.20-0.26
steps/s under tcmalloc) it draws digit 72.6%, colour 100%, direction 53.8%, all attributes 47.7% of
128 videos (jaxgen eval --num-videos 128); the one-digit ones 93.2% in all attributes, the
two-digit ones 8.7% (their digit 62.3%): its high-noise expert does not tie a colour to its
direction (NOTES.md, "Binding"). Those weights are experiments/resume/moving-digits-t2v-fast.

  jaxgen train --config experiments/configs/moving_digits_t2v_fast.py \
    --workdir ~/jaxgen/runs/t2v_fast \
    --config.init_from=experiments/resume/moving-digits-t2i-three
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(__file__))
import moving_digits_t2i_three  # noqa: E402
import moving_digits_t2v_three  # noqa: E402


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  runlocal = arg == "runlocal"
  c = moving_digits_t2v_three.get_config(arg)
  image = moving_digits_t2i_three.get_config(arg)
  c.text.causal = image.text.causal
  c.text.window = image.text.window
  c.dit.patch_size = image.dit.patch_size
  c.expert_dit = ml_collections.ConfigDict({"transformer": {"patch_size": (1, 2, 2)}})
  c.text_encoder_experts = ("transformer", "transformer_2")
  c.curriculum_experts = ("transformer",)
  c.init_fresh = ("transformer",)  # new patch size: not from the image stage's 1x1 weights
  c.video_batch_size = 6 if runlocal else 48
  c.batch_size = c.video_batch_size + (4 if runlocal else 40)
  c.expert_shares = ml_collections.ConfigDict({"videos": (4, 1, 1), "images": (0, 1, 1)})
  c.optim.end_lr_factor = 1.0  # constant after warmup, as in the image stage
  c.num_steps = 20 if runlocal else 3000
  return c
