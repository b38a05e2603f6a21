r"""Can the text-to-video DiT learn the caption at a range of noise levels? Trains the Moving
Digits t2v model (fresh, text encoder included) on levels t in [--t-min, --t-max] only, without caption
dropout and (unless --frame-masks) without frame masks, and every 100 steps prints
experiments/caption_sensitivity.py's swap figures at t = --levels on 64 held-back one-digit
videos; with --two-digit, also the binding figures (caption_sensitivity.PAIR_SWAPS: the two
digits, or colours, exchanged between the phrases) on 64 held-back two-digit ones.

It separates what the caption is worth from how the levels are mixed: trained on [0.9, 1], the
DiT learns the direction and place words within a few hundred steps; over all levels it does not.

  PYTHONPATH=. python experiments/interval_probe.py --t-min 0.8 [--t-max 1] --steps 300 \
    [--two-digit [--one-digit-steps 300]] [--frame-masks] [--images] \
    [--init-from RUN_OR_BUNDLE_OR_PROBE --expert transformer_2 | --encoder-only] [--save FILE] \
    --config.vae.workdir=$HOME/jaxgen/runs/vae --config.vae.latents_dir=$HOME/jaxgen/runs/vae/latents
"""

import argparse
import os
import sys
import time

import flax.linen as nn
from flax import serialization
import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import caption_sensitivity as cs  # noqa: E402
from jaxgen import files  # noqa: E402
from jaxgen.data import moving_digits as md  # noqa: E402
from jaxgen.data import vocab  # noqa: E402
from jaxgen.pipelines import conditioning  # noqa: E402
from jaxgen.train import config_lib  # noqa: E402
from jaxgen.train import masks  # noqa: E402
from jaxgen.train import optim  # noqa: E402
from jaxgen.train.tasks.t2v import T2VTask  # noqa: E402
from jaxgen.zoo.checkpoint import check_params  # noqa: E402

CONFIG = os.path.join(os.path.dirname(__file__), "configs", "moving_digits_t2v.py")
NUM_EVAL = 64


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--t-min", type=float, required=True, help="train on t in [t_min, t_max]")
  parser.add_argument("--t-max", type=float, default=1.0)
  parser.add_argument("--levels", default="0.95,0.8", help="comma-separated levels of the figures")
  parser.add_argument("--steps", type=int, default=300)
  parser.add_argument("--two-digit", action="store_true",
                      help="train on every example (one or two digits), not one-digit ones only")
  parser.add_argument("--frame-masks", action="store_true",
                      help="give frames clean as the config's Open-Sora masks do")
  parser.add_argument("--images", action="store_true",
                      help="train and judge on each video's first latent frame alone, as images")
  parser.add_argument("--one-digit-steps", type=int, default=0,
                      help="with --two-digit: one-digit videos only for this many steps first")
  parser.add_argument("--init-from",
                      help="start from this run's or bundle's text encoder and its --expert, or "
                      "from a probe's --save file")
  parser.add_argument("--expert", default="transformer",
                      help="with --init-from: the expert whose weights the probe's DiT takes")
  parser.add_argument("--encoder-only", action="store_true",
                      help="with --init-from: take the text encoder alone; the DiT starts fresh")
  parser.add_argument("--save", help="write the probe's final weights here (flax msgpack)")
  rest, overrides = config_lib.split_overrides(sys.argv[1:])
  args = parser.parse_args(rest)
  if args.images and args.frame_masks:
    # A mask that gives the only frame clean would leave nothing to generate.
    parser.error("--frame-masks needs videos; with --images there is one frame, none to give")
  if args.encoder_only and not args.init_from:
    parser.error("--encoder-only takes the encoder of --init-from; give --init-from")
  if args.save and not os.path.isdir(os.path.dirname(os.path.abspath(args.save))):
    parser.error(f"--save={args.save!r}: its directory does not exist")
  config = config_lib.apply_overrides(config_lib.load(CONFIG), overrides)
  config.boundary_ratio = None  # one transformer: the probe picks the levels itself
  config.optim.num_steps = config.num_steps = args.steps
  config.optim.warmup_steps = min(100, args.steps // 3)
  config.optim.end_lr_factor = 1.0  # constant after warmup: every probe length learns alike
  task = T2VTask(config)
  task.data_source("train")  # encodes the latents on first use

  # Held back: one-digit examples for the word swaps; with --two-digit, two-digit ones for the
  # exchanges that show binding (caption_sensitivity.PAIR_SWAPS).
  held = [cs.examples(config.seed, NUM_EVAL) + (cs.SWAPS,)]
  if args.two_digit:
    held.append(cs.examples(config.seed, NUM_EVAL, 2) + (cs.PAIR_SWAPS,))
  held_back = np.concatenate([index for index, _, _ in held])
  one_digit = np.setdiff1d(cs.examples(config.seed, config.data.train_size // 3)[0], held_back)
  pool = (np.setdiff1d(np.arange(config.data.train_size), held_back) if args.two_digit
          else one_digit)
  cache = np.load(os.path.join(task.cache_dir, "train.npz"))["mean"]
  cache = cache[:, :1] if args.images else cache
  latents = lambda index: task.normalized_latents(
      {"latents": jnp.asarray(cache[index], jnp.float32)}, None)

  def tokenize(texts):
    enc = task.tokenizer(list(texts), padding="max_length", max_length=vocab.MAX_LENGTH,
                         return_tensors="np")
    return jnp.asarray(enc["input_ids"]), jnp.asarray(enc["attention_mask"])

  # Training captions are the dataset's own (every template, regions named half of the time).
  ids, mask = tokenize(md.example(config.seed, "train", int(i))["caption"] for i in pool)
  params = nn.unbox(task.init(jax.random.key(0), {"input_ids": ids[:1],
                                                   "latents": latents(pool[:1])}))
  if args.init_from:
    if os.path.isfile(args.init_from):  # a probe's --save (its DiT is `transformer`)
      with open(args.init_from, "rb") as f:
        source = serialization.msgpack_restore(f.read())
    else:
      source = cs.restore(args.init_from, "ema_params")
    if not args.encoder_only and args.expert not in source:
      parser.error(f"--expert={args.expert!r}: {args.init_from} has "
                   f"{sorted(k for k in source if k != 'text_encoder')}")
    source = {"text_encoder": source["text_encoder"],
              "transformer": params["transformer"] if args.encoder_only else source[args.expert]}
    what = "--encoder-only" if args.encoder_only else f"--expert={args.expert!r}"
    check_params(source, params, f"--init-from={args.init_from!r} {what}")
    params = jax.tree.map(jnp.asarray, source)
  tx = optim.optimizer(config.optim)
  opt_state = tx.init(params)

  def loss(params, x0, ids, mask, t, eps, frame_mask):
    context, pooled = task.encode_text(params, ids, mask)
    tb = t[:, None, None, None, None]
    cond = {"context": context, "pooled": pooled, "mask": mask.astype(bool),
            "frames": conditioning.condition_channels(x0, frame_mask)}
    v = task.expert(params, "transformer")((1 - tb) * x0 + tb * eps,
                                           t * task.model.schedule.num_train_timesteps, cond)
    generated = jnp.broadcast_to((1 - frame_mask)[:, :, None, None, None], x0.shape)
    return jnp.sum(generated * (v - (eps - x0))**2) / jnp.sum(generated)

  @jax.jit
  def step(params, opt_state, x0, ids, mask, key):
    k_t, k_eps, k_mask = jax.random.split(key, 3)
    t = jax.random.uniform(k_t, x0.shape[:1], minval=args.t_min, maxval=args.t_max)
    frame_mask = (masks.frame_masks(k_mask, *x0.shape[:2], config.masks) if args.frame_masks
                  else jnp.zeros(x0.shape[:2]))
    value, grads = jax.value_and_grad(loss)(params, x0, ids, mask, t,
                                            jax.random.normal(k_eps, x0.shape), frame_mask)
    updates, opt_state = tx.update(grads, opt_state, params)
    return jax.tree.map(jnp.add, params, updates), opt_state, value

  eval_loss = jax.jit(lambda p, x0, i, m, t: loss(
      p, x0, i, m, jnp.full(x0.shape[:1], t), jax.random.normal(jax.random.key(1), x0.shape),
      jnp.zeros(x0.shape[:2])))
  evals = [(attrs, latents(index), table) for index, attrs, table in held]

  def swaps(t):
    figures = []
    for attrs, x0, table in evals:
      true, changes = cs.swap_changes(task, attrs, lambda i, m: eval_loss(params, x0, i, m, t),
                                      table)
      figures += [f"loss {true:.3f}"] + [f"{name} {v:+.1f}%" for name, v in changes.items()
                  if name != "location (left out)"]
    return f"t={t} " + " ".join(figures)

  rng, key, start = np.random.default_rng(0), jax.random.key(2), time.time()
  first = np.flatnonzero(np.isin(pool, one_digit))  # rows of one-digit videos
  for s in range(1, args.steps + 1):
    rows = (first[rng.integers(len(first), size=config.batch_size)] if s <= args.one_digit_steps
            else rng.integers(len(pool), size=config.batch_size))
    key, k = jax.random.split(key)
    params, opt_state, value = step(params, opt_state, latents(pool[rows]), ids[rows], mask[rows],
                                    k)
    if s % 100 == 0:
      print(f"step {s} ({time.time() - start:.0f} s) train loss {float(value):.3f} | "
            + " | ".join(swaps(float(t)) for t in args.levels.split(",")), flush=True)
  if args.save:
    def write(tmp):
      with open(tmp, "wb") as f:
        f.write(serialization.msgpack_serialize(jax.tree.map(np.asarray, params)))
    files.write_file(args.save, write)


if __name__ == "__main__":
  main()
