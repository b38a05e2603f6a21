r"""Does a text-to-video checkpoint read each word class? Its flow-matching loss on fixed training
videos and noise, with the true captions and with one attribute swapped in every caption.

A model that uses an attribute loses accuracy when it is swapped; +0.0% means the words are
ignored. Captions use one fixed template ("a red 3 moving left from the top right"), so only the
attribute differs. For scale it also prints what each attribute is worth at the highest noise:
the share of the latents' variance that their mean given the attribute(s) explains, less the
share that as many random groups would explain.

With --two-digit it judges two-digit examples ("a red 3 moving left and a blue 7 moving up"),
and tests binding: exchanging the two digits (or colours) between the phrases keeps every word,
so it costs a model nothing unless it knows which digit goes with which colour.

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
from jaxgen.pipelines import bundle
from jaxgen.pipelines import conditioning
from jaxgen.pipelines import load
from jaxgen.train import checkpoint
from jaxgen.train import config_lib
from jaxgen.train.tasks.t2v import T2VTask

# Each swap maps an example's objects, (digit, colour, direction, location) index tuples, to others.
def _each(swap):
  return lambda objects: tuple(swap(*o) for o in objects)


SWAPS = {
    "digit": _each(lambda d, c, r, l: ((d + 1) % 10, c, r, l)),
    "colour": _each(lambda d, c, r, l: (d, (c + 1) % len(md.COLORS), r, l)),
    "direction (opposite)": _each(lambda d, c, r, l: (d, c, (r + 4) % len(md.DIRECTIONS), l)),
    "location (opposite)": _each(lambda d, c, r, l: (d, c, r, len(captions.LOCATIONS) - 1 - l)),
    "location (left out)": _each(lambda d, c, r, l: (d, c, r, None)),
}


def _exchange(field: int):
  """Swaps one attribute between the two objects: the words stay, what they are bound to moves."""
  def swap(objects):
    a, b = objects
    return (a[:field] + b[field:field + 1] + a[field + 1:],
            b[:field] + a[field:field + 1] + b[field + 1:])
  return swap


# Two-digit examples: a model that reads the digit words but not which digit goes with which
# colour (and so with which place) loses nothing when the digits are exchanged.
PAIR_SWAPS = {
    "digit": SWAPS["digit"],
    "digits exchanged": _exchange(0),
    "colours exchanged": _exchange(1),
}


def examples(seed: int, count: int, num_objects: int = 1) -> tuple[list[int], list[tuple]]:
  """Indices of the first `count` training examples with `num_objects` digits (all different,
  so that exchanging two changes the caption) and their objects' attributes."""
  index, attrs = [], []
  i = 0
  while len(index) < count:
    objects = md.example_objects(seed, "train", i)
    if len(objects) == num_objects and len({o.digit for o in objects}) == num_objects:
      index.append(i)
      attrs.append(tuple(
          (o.digit, o.color, o.direction, captions.LOCATIONS.index(md.location(o.start)))
          for o in objects))
    i += 1
  return index, attrs


def caption(objects: tuple, numeral: bool) -> str:
  """One fixed template: "a red 3 moving left from the top right[ and a ...]"."""
  phrases = [captions.object_phrase(
      d, md.COLOR_NAMES[c], md.DIRECTION_NAMES[r], finite=False, template=0, verb=0, phrase=0,
      numeral=numeral, location=None if l is None else captions.LOCATIONS[l])
      for d, c, r, l in objects]
  return captions.PAIR_TEMPLATES[0][1].format(*phrases) if len(phrases) == 2 else phrases[0]


def swap_changes(task: T2VTask, attrs: list[tuple], loss,
                 swaps: dict = SWAPS) -> tuple[float, dict[str, float]]:
  """loss(ids, mask) of the fixed-template captions of `attrs`, and its change in % with each of
  `swaps` applied to every caption."""
  def tokens(swap):
    texts = [caption(swap(a), numeral=i % 2 == 0) for i, a in enumerate(attrs)]
    enc = task.tokenizer(texts, padding="max_length", max_length=vocab.MAX_LENGTH,
                         return_tensors="np")
    return jnp.asarray(enc["input_ids"]), jnp.asarray(enc["attention_mask"])
  true = float(loss(*tokens(lambda a: a)))
  return true, {name: 100 * (float(loss(*tokens(swap))) / true - 1) for name, swap in swaps.items()}


def restore(source: str, which: str) -> dict:
  """Params of a `jaxgen train` run (its latest checkpoint's `which`), or the weights of a
  text-to-video bundle: a directory, or a shipped model's name."""
  path = load.bundle_dir(source)
  if os.path.isfile(os.path.join(path, bundle.META_FILE)):
    return {k: v for k, v in bundle.load_bundle(path)[1].items() if k != "vae"}
  return checkpoint.restore_params(os.path.expanduser(source), which)


def explained_variance(x0: np.ndarray, attrs: list[tuple]) -> dict[str, str]:
  """Share of the variance of x0 [N, ...] explained by group means, per attribute set."""
  names = ("digit", "colour", "direction", "location")
  total = np.mean((x0 - x0.mean(0))**2)
  out = {}
  for keys in (("colour",), ("digit",), ("direction",), ("location",),
               ("colour", "direction", "location")):
    groups = {}
    for i, a in enumerate(attrs):
      groups.setdefault(tuple(a[0][names.index(k)] for k in keys), []).append(i)
    residual = sum(np.sum((x0[g] - x0[g].mean(0))**2) for g in groups.values()) / x0.size
    out["+".join(keys)] = f"{100 * (1 - residual / total - len(groups) / len(attrs)):.1f}%"
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", required=True)
  parser.add_argument("--workdir", required=True,
                      help="the `jaxgen train` run, or a bundle (directory or shipped name)")
  parser.add_argument("--weights", choices=("params", "ema_params"), default="ema_params")
  parser.add_argument("--num-videos", type=int, default=64)
  parser.add_argument("--levels", default="0.5,0.8,0.95", help="noise levels t in (0, 1)")
  parser.add_argument("--images", action="store_true",
                      help="judge the first latent frames alone, as images (image-stage runs)")
  parser.add_argument("--two-digit", action="store_true",
                      help="two-digit examples, with the swaps that test binding (PAIR_SWAPS)")
  parser.add_argument("--num-stats", type=int, default=2000,
                      help="videos for the explained-variance figures")
  rest, overrides = config_lib.split_overrides(sys.argv[1:])
  args = parser.parse_args(rest)
  config = config_lib.apply_overrides(config_lib.load(args.config), overrides)
  task = T2VTask(config)
  params = restore(args.workdir, args.weights)

  num_objects, swaps = (2, PAIR_SWAPS) if args.two_digit else (1, SWAPS)
  count = args.num_videos if args.two_digit else max(args.num_videos, args.num_stats)
  index, attrs = examples(config.seed, count, num_objects)
  latents = np.load(os.path.join(task.cache_dir, "train.npz"))["mean"][index]
  latents = latents[:, :1] if args.images else latents
  everything = task.normalized_latents({"latents": jnp.asarray(latents, jnp.float32)}, None)
  result = {} if args.two_digit else {
      "explained_variance": explained_variance(np.asarray(everything), attrs)}
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
    true, changes = swap_changes(task, attrs, lambda ids, mask: loss(ids, mask, t), swaps)
    result["levels"][str(t)] = {"loss": true, **{k: f"{v:+.1f}%" for k, v in changes.items()}}
  print(json.dumps(result, indent=1))


if __name__ == "__main__":
  main()
