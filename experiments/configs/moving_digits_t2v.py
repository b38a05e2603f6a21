r"""Text-to-video on Moving Digits: two tiny Wan DiTs (noise-level experts) over the VAE's latents
(9x8x8x8, 2x2 patches: 144 tokens) and a tiny CLIP-architecture text encoder trained with them;
flow matching, frame masks.

Needs the VAE runs (moving_digits_vae.py, then its decoder's fine-tuning) first; the latents are
encoded into vae.latents_dir on first use.

  jaxgen train --config experiments/configs/moving_digits_t2v.py --workdir ~/jaxgen/runs/t2v
  jaxgen train --config experiments/configs/moving_digits_t2v.py:runlocal --workdir /tmp/t2v

The shipped model trains these DiTs on images first (moving_digits_t2i.py), then here on videos
and images from those weights, in eight runs of 4,000, 2,500, 5,000, 2,000, 6,000, 8,000, 2,500
and 3,000 steps with the text encoder frozen (each from the last, --config.curriculum_steps=0;
the last three at --config.optim.lr=4e-4, 1.5e-4 and 1e-4, --config.ema_decay=0.9995, the last
with --config.optim.frozen='("text_encoder",)'), then 3,000 steps on two-digit videos only
(--config.curriculum_digits=2 --config.curriculum_steps=3000) at 1e-4 with the text encoder
training through both experts; experiments/train_moving_digits.sh:

  jaxgen train --config experiments/configs/moving_digits_t2v.py --workdir ~/jaxgen/runs/t2v \
    --config.init_from=experiments/resume/moving-digits-t2i --config.batch_size=64 \
    --config.video_batch_size=32 --config.text_encoder_experts='()' --config.num_steps=4000
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402
import moving_digits_vae  # noqa: E402


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  runlocal = arg == "runlocal"
  c = common.base_config("t2v", runlocal)
  c.description = ("Moving Digits text-to-video: tiny Wan DiT + CLIP-architecture text encoder "
                   "+ Wan VAE, trained by jaxgen on the built-in dataset")
  c.num_steps = 20 if runlocal else 4500
  c.batch_size = 32
  c.optim.lr = 1e-3
  c.optim.warmup_steps = 5 if runlocal else 200
  c.ema_decay = 0.999

  c.vae = ml_collections.ConfigDict()
  c.vae.model = moving_digits_vae.get_config(arg).model
  # The VAE run whose decoder decodes samples: the decoder's fine-tuning, whose encoder (and so
  # the latents in latents_dir) is the first VAE run's, bit for bit.
  c.vae.workdir = os.path.expanduser("~/jaxgen/runs/vae_decoder")
  c.vae.latents_dir = os.path.expanduser("~/jaxgen/runs/vae/latents")

  c.text = ml_collections.ConfigDict()
  c.text.width = 64 if runlocal else 128
  c.text.mlp_dim = 128 if runlocal else 512
  c.text.num_layers = 1 if runlocal else 2
  c.text.num_heads = 2 if runlocal else 4
  c.text.causal = True  # CLIP's causal attention (CLIPTextConfig.causal)
  c.text.window = None  # CLIPTextConfig.attention_window: local attention, e.g. 2

  c.dit = ml_collections.ConfigDict()
  c.dit.patch_size = (1, 2, 2)
  c.dit.num_layers = 2 if runlocal else 6
  c.dit.num_heads = 2 if runlocal else 4
  c.dit.head_dim = 32
  c.dit.ffn_dim = 128 if runlocal else 512
  c.dit.freq_dim = 64 if runlocal else 128
  c.dit.rope_max_seq_len = 32
  c.dit.attention = "full"  # 144 tokens: full spacetime attention is cheap
  # The caption's pooled (EOS) state also modulates every block (SD3-style): with cross-attention
  # alone, a model trained 2,600 steps used the colour words only; its loss did not change when
  # a caption's digit or direction was swapped.
  c.dit.pooled_text = True
  # Absolute sin-cos positions besides RoPE: at θ = 10⁴ most rotary pairs hardly turn across a
  # 9x4x4 token grid, and that model was 70-88% invariant to shuffling its tokens: it drew each
  # frame's digit wherever the noise put it.
  c.dit.pos_embed = "sincos"
  # The base of both position encodings. At Wan's θ = 10⁴ the sin-cos table varied by 2.5 of its
  # norm 8 across the 9x4x4 grid, a third of a noisy patch's embedding: after 3,000 steps that
  # model drew no use from captions that named where the digit starts. At θ = 10 every frequency
  # turns across the few positions an axis has (the table varies by 4.4), none wraps round.
  c.dit.rope_theta = 10.0
  c.dit.remat_policy = "none"

  # Noise levels t = shift(u), u ~ U[0, 1], at shift 3 (SD3's and Wan's timestep shift): 43% of
  # the samples, and of the sampling steps, above t = 0.8.
  c.flow_shift = 3.0
  c.logit_normal = ()  # or (mean, std) for SD3's logit-normal levels before the shift
  # Two noise-level experts (eDiff-I; Wan 2.2): `transformer` for t >= 0.8, where the caption
  # decides where the digit is and where it goes, `transformer_2` below, where the noisy video
  # shows it. One DiT for all levels ignored the direction and place words: trained 3,700 steps at
  # shift 1, or 600 steps at shift 3 on one-digit videos (+0.2% loss at t = 0.8 and 0.95 when the
  # direction was swapped), while the same DiT, captions and videos on t in [0.9, 1] only learnt
  # them within 300 steps (+48%): at lower levels it learns to read the video from its input, and
  # that drowns what the caption is worth at the top.
  c.boundary_ratio = 0.8
  c.text_encoder_experts = ("transformer",)  # whose gradient trains the text encoder (T2VTask)
  # One-digit videos only for the first steps (a curriculum). On one- and two-digit videos from
  # the start, the high-noise expert had not learnt the direction and place words after 2,000
  # steps (<= 0.2%); after 300 one-digit steps a probe on t >= 0.8 learnt them (+44.9% / +16.6%
  # after 400 more on all videos: interval_probe.py --one-digit-steps). 600 steps here: the
  # expert sees half of each batch.
  c.curriculum_steps = 10 if runlocal else 600
  c.curriculum_digits = 1  # 2: two-digit videos only (the shipped model's last run)
  # The experts whose rows of the batch the curriculum fills (None: all). One-digit videos for the
  # high-noise expert alone teach it the direction words while the lower experts keep learning
  # which digit goes with which colour on two-digit ones (experiments/NOTES.md, "Binding").
  c.curriculum_experts = None
  c.caption_dropout = 0.1
  # Image-video joint training: the first video_batch_size examples of each batch are videos,
  # the rest train on their first latent frame as images (None: all videos; T2VTask.loss).
  c.video_batch_size = None
  # Each expert's share of the videos and of the images: {"videos": (...), "images": (...)},
  # relative, one per expert from the highest levels down (None: equal shares).
  c.expert_shares = None
  # {expert name: fields of `dit` it sets otherwise}, e.g. one expert's patch size (None: none).
  c.expert_dit = None
  # Open-Sora frame masks (jaxgen.train.masks.MASK_TYPES): the chance of each task per example.
  # 70% get no frame: with a frame given, the caption is not needed to place the digit.
  c.masks = ml_collections.ConfigDict({
      "none": 0.7, "image_head": 0.1, "image_tail": 0.03, "head_tail": 0.07,
      "extend_head": 0.07, "random": 0.03})

  c.sampling = ml_collections.ConfigDict()  # samples.png, and the bundle's defaults
  c.sampling.sampler = "unipc"
  c.sampling.num_steps = 30
  c.sampling.guidance_scale = 4.0
  return c
