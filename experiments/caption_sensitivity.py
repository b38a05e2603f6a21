r"""Does a text-to-video checkpoint read each word class? Its flow-matching loss on fixed training
videos and noise, with the true captions and with one attribute swapped in every caption.

A model that uses an attribute loses accuracy when it is swapped; +0.0% means the words are
ignored. Captions use one fixed template ("a red 3 moving left from the top right"), so only the
attribute differs. For scale it also prints what each attribute is worth at the highest noise:
the share of the latents' variance that their mean given the attribute(s) explains, less the
share that as many random groups would explain.

  PYTHONPATH=. python experiments/caption_sensitivity.py \
    --config experiments/configs/moving_digits_t2v.py --workdir ~/jaxgen/runs/t2v \
    --config.vae.workdir=$HOME/jaxgen/runs/vae \
    --config.vae.latents_dir=$HOME/jaxgen/runs/vae/latents
"""

import argparse
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.data import captions
from jaxgen.data import moving_digits as md
from jaxgen.data import vocab
from jaxgen.pipelines import conditioning
from jaxgen.train import checkpoint
from jaxgen.train import config_lib
from jaxgen.train.tasks.t2v import T2VTask

# Each swap maps one object's (digit, colour, direction, location) indices to others.
SWAPS = {
    "digit": lambda d, c, r, l: ((d + 1) % 10, c, r, l),
    "colour": lambda d, c, r, l: (d, (c + 1) % len(md.COLORS), r, l),
    "direction (opposite)": lambda d, c, r, l: (d, c, (r + 4) % len(md.DIRECTIONS), l),
    "location (opposite)": lambda d, c, r, l: (d, c, r, len(captions.LOCATIONS) - 1 - l),
    "location (left out)": lambda d, c, r, l: (d, c, r, None),
}


def single_object_examples(seed: int, count: int) -> tuple[list[int], list[tuple]]:
  """Indices of the first `count` one-digit training examples and their attributes."""
  index, attrs = [], []
  i = 0
  while len(index) < count:
    objects = md.example_objects(seed, "train", i)
    if len(objects) == 1:
      o = objects[0]
      index.append(i)
      attrs.append((o.digit, o.color, o.direction, captions.LOCATIONS.index(md.location(o.start))))
    i += 1
  return index, attrs


def caption(d: int, c: int, r: int, l: int | None, numeral: bool) -> str:
  return captions.object_phrase(
      d, md.COLOR_NAMES[c], md.DIRECTION_NAMES[r], finite=False, template=0, verb=0, phrase=0,
      numeral=numeral, location=None if l is None else captions.LOCATIONS[l])


def swap_changes(task: T2VTask, attrs: list[tuple], loss) -> tuple[float, dict[str, float]]:
  """loss(ids, mask) of the fixed-template captions of `attrs`, and its change in % with each of
  SWAPS applied to every caption."""
  def tokens(swap):
    texts = [caption(*swap(*a), numeral=i % 2 == 0) for i, a in enumerate(attrs)]
    enc = task.tokenizer(texts, padding="max_length", max_length=vocab.MAX_LENGTH,
                         return_tensors="np")
    return jnp.asarray(enc["input_ids"]), jnp.asarray(enc["attention_mask"])
  true = float(loss(*tokens(lambda *a: a)))
  return true, {name: 100 * (float(loss(*tokens(swap))) / true - 1) for name, swap in SWAPS.items()}


def explained_variance(x0: np.ndarray, attrs: list[tuple]) -> dict[str, str]:
  """Share of the variance of x0 [N, ...] explained by group means, per attribute set."""
  names = ("digit", "colour", "direction", "location")
  total = np.mean((x0 - x0.mean(0))**2)
  out = {}
  for keys in (("colour",), ("digit",), ("direction",), ("location",),
               ("colour", "direction", "location")):
    groups = {}
    for i, a in enumerate(attrs):
      groups.setdefault(tuple(a[names.index(k)] for k in keys), []).append(i)
    residual = sum(np.sum((x0[g] - x0[g].mean(0))**2) for g in groups.values()) / x0.size
    out["+".join(keys)] = f"{100 * (1 - residual / total - len(groups) / len(attrs)):.1f}%"
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", required=True)
  parser.add_argument("--workdir", required=True, help="the `jaxgen train` run")
  parser.add_argument("--weights", choices=("params", "ema_params"), default="ema_params")
  parser.add_argument("--num-videos", type=int, default=64)
  parser.add_argument("--levels", default="0.5,0.8,0.95", help="noise levels t in (0, 1)")
  parser.add_argument("--images", action="store_true",
                      help="judge the first latent frames alone, as images (image-stage runs)")
  parser.add_argument("--num-stats", type=int, default=2000,
                      help="videos for the explained-variance figures")
  rest, overrides = config_lib.split_overrides(sys.argv[1:])
  args = parser.parse_args(rest)
  config = config_lib.apply_overrides(config_lib.load(args.config), overrides)
  task = T2VTask(config)
  params = checkpoint.restore_params(os.path.expanduser(args.workdir), args.weights)

  index, attrs = single_object_examples(config.seed, max(args.num_videos, args.num_stats))
  latents = np.load(os.path.join(task.cache_dir, "train.npz"))["mean"][index]
  latents = latents[:, :1] if args.images else latents
  everything = task.normalized_latents({"latents": jnp.asarray(latents, jnp.float32)}, None)
  result = {"explained_variance": explained_variance(np.asarray(everything), attrs)}
  index, attrs, x0 = index[:args.num_videos], attrs[:args.num_videos], everything[:args.num_videos]
  eps = jax.random.normal(jax.random.key(0), x0.shape)
  no_frames = conditioning.condition_channels(x0, jnp.zeros(x0.shape[:2]))
  denoiser = task.denoiser(params)

  @jax.jit
  def loss(ids, mask, t):
    context, pooled = task.encode_text(params, ids, mask)
    x_t = (1.0 - t) * x0 + t * eps  # flow matching, shift 1
    cond = {"context": context, "pooled": pooled, "mask": mask.astype(bool), "frames": no_frames}
    v = denoiser(x_t, jnp.full(x0.shape[:1], t * task.model.schedule.num_train_timesteps), cond)
    return jnp.mean((v - (eps - x0))**2)

  result |= {"workdir": args.workdir, "weights": args.weights, "num_videos": len(index),
            "levels": {}}
  for t in map(float, args.levels.split(",")):
    true, changes = swap_changes(task, attrs, lambda ids, mask: loss(ids, mask, t))
    result["levels"][str(t)] = {"loss": true, **{k: f"{v:+.1f}%" for k, v in changes.items()}}
  print(json.dumps(result, indent=1))


if __name__ == "__main__":
  main()
