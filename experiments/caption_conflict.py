r"""Caption or input: which digit does a model keep? Each held-out one-digit image (a test video's
first frame) is encoded, noised to flow level s (SDEdit: the model's own sampler and steps, run
from the level of its plan nearest s) and denoised by the model under a caption that names another
digit, the colour and place unchanged. The oracle then reads whether the result shows the
caption's digit or the input's: at high levels a model that reads the caption draws the caption's,
and one that ignores it draws whatever the noise suggests (often neither).

  PYTHONPATH=. python experiments/caption_conflict.py --model moving-digits --levels 0.8,0.6,0.4
"""

import argparse
import dataclasses
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.data import moving_digits as md
from jaxgen.diffusion.samplers import SamplerConfig, make_plan, sample
from jaxgen.eval import metrics
from jaxgen.models.clip_text import CLIPTextModel
from jaxgen.models.vae_wan import AutoencoderKLWan, denormalize
from jaxgen.pipelines import bundle, conditioning
from jaxgen.pipelines.load import bundle_dir
from jaxgen.pipelines.pixels import to_uint8
from jaxgen.pipelines.text_to_video import TextToVideo, denoiser, guidance_weights


def conflicting_examples(data_seed: int, n: int):
  """n one-digit test examples: (first frames uint8 [n, 1, H, W, 3], captions naming another digit,
  those digits, the digits shown, the colours)."""
  frames, captions, named, shown, colors = [], [], [], [], []
  i = 0
  while len(frames) < n:
    objects = md.example_objects(data_seed, "test", i)
    if len(objects) == 1:
      (obj,) = objects
      other = (obj.digit + 1 + i % 9) % 10  # any digit but the shown one
      frames.append(md.example(data_seed, "test", i)["video"][:1])
      renamed = dataclasses.replace(obj, digit=other)
      captions.append(md.describe([renamed], np.random.default_rng(i)))
      named.append(other)
      shown.append(obj.digit)
      colors.append(obj.color)
    i += 1
  return np.stack(frames), captions, np.array(named), np.array(shown), np.array(colors)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--model", default="moving-digits",
                      help="a shipped model or bundle directory")
  parser.add_argument("--levels", default="0.8,0.6,0.4", help="flow levels s to start from")
  parser.add_argument("--num-images", type=int, default=128)
  parser.add_argument("--data-seed", type=int, default=1)
  args = parser.parse_args()
  levels = [float(v) for v in args.levels.split(",")]
  if not all(0.0 < s <= 1.0 for s in levels):
    raise ValueError(f"--levels={args.levels!r}; expected flow levels in (0, 1]")
  pipe = TextToVideo(*bundle.load_bundle(bundle_dir(args.model)))
  cfg = pipe.config
  if cfg.prediction_type != "flow":
    raise ValueError(f"--model={args.model!r} predicts {cfg.prediction_type!r}; expected a flow "
                     f"model")

  frames, captions, named, shown, colors = conflicting_examples(args.data_seed, args.num_images)
  n = len(captions)
  z0 = pipe.encode_video(frames)
  text = CLIPTextModel(cfg.text_encoder)
  given = conditioning.condition_channels(jnp.zeros_like(z0), jnp.zeros(z0.shape[:2]))

  def cond(prompts):
    ids, mask = pipe.tokenizer(prompts)
    context, pooled = text.apply({"params": pipe.params["text_encoder"]}, ids, mask)
    return {"context": context, "pooled": pooled, "mask": mask, "frames": given}
  c, u = cond(captions), cond([""] * n)
  # The model's sampler, steps and guidance, from the plan's level nearest each s.
  full = SamplerConfig(cfg.sampler, cfg.num_steps)
  plan_levels = np.asarray(make_plan(full, cfg.schedule).t[:-1]) / cfg.schedule.num_train_timesteps
  weights = guidance_weights(cfg, full, cfg.guidance_scale)

  @functools.partial(jax.jit, static_argnums=0)
  def edit(sampler, key):
    z = sample(denoiser(cfg, pipe.params), jax.random.normal(key, z0.shape), c, config=sampler,
               schedule=cfg.schedule, prediction_type=cfg.prediction_type, guidance_scale=weights,
               negative_cond=u, x_init=z0)
    video = AutoencoderKLWan(cfg.vae).apply({"params": pipe.params["vae"]},
                                            denormalize(cfg.vae, z), method=AutoencoderKLWan.decode)
    return to_uint8(video)

  def digit_accuracy(videos, digits):
    attributes = {"num_objects": np.ones(n, np.int32),
                  "digit": np.stack([digits, -np.ones_like(digits)], 1),
                  "color": np.stack([colors, -np.ones_like(colors)], 1),
                  "direction": -np.ones((n, 2), np.int32)}
    return metrics.evaluate(videos, attributes)["digit_accuracy"]

  result = {"model": args.model, "num_images": n, "sampler": cfg.sampler, "steps": cfg.num_steps,
            "guidance": cfg.guidance_scale}
  for s0 in levels:
    start = int(np.argmin(np.abs(plan_levels - s0)))
    # make_plan runs the last int(N * strength) steps: half a step of slack against rounding.
    sampler = dataclasses.replace(
        full, strength=min(1.0, (cfg.num_steps - start + 0.5) / cfg.num_steps))
    videos = np.asarray(edit(sampler, jax.random.key(0)))
    result[f"s={plan_levels[start]:.3f}"] = {"caption_digit": digit_accuracy(videos, named),
                                             "input_digit": digit_accuracy(videos, shown)}
  print(json.dumps(result, indent=2))


if __name__ == "__main__":
  main()
