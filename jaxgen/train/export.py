"""After training: the VAE's oracle check, and the export of a text-to-video or stage bundle.

  python -m jaxgen.train.export vae-eval --config experiments/configs/moving_digits_vae.py \
      --workdir ~/jaxgen/runs/vae [--num-videos 256]
  python -m jaxgen.train.export bundle --config experiments/configs/moving_digits_t2v.py \
      --workdir ~/jaxgen/runs/t2v --out jaxgen/zoo/weights/moving-digits [--storage-dtype float16]
  python -m jaxgen.train.export stage --config experiments/configs/moving_digits_tsr.py \
      --workdir ~/jaxgen/runs/tsr --out jaxgen/zoo/weights/moving-digits-tsr
"""

import argparse
import json
import sys

import jax
import numpy as np

from jaxgen.pipelines.pixels import to_uint8, to_unit_range
from jaxgen.train import checkpoint as ckpt_lib
from jaxgen.train import config_lib


def vae_oracle_metrics(config, workdir: str, num_videos: int = 256, batch_size: int = 32,
                       split: str = "test") -> dict:
  """Oracle metrics of the VAE's reconstructions (posterior means, EMA weights) of the first
  `num_videos` videos of `split` (test: held-out glyphs), with those of the originals."""
  from jaxgen.eval import metrics
  from jaxgen.train import fast_conv
  from jaxgen.train.tasks import data, vae
  params = ckpt_lib.restore_params(workdir)
  model = vae.VAETask(config).model
  source = data.moving_digits(config.data, split)
  examples = [source[i] for i in range(min(num_videos, len(source)))]

  @jax.jit
  def reconstruct(video):
    with fast_conv.causal_conv_as_2d():
      x = to_unit_range(video)
      mean, _ = model.apply({"params": params}, x, method=vae.encode_unrolled)
      return to_uint8(model.apply({"params": params}, mean, method=vae.decode_unrolled))

  originals = np.stack([e["video"] for e in examples])
  recon = np.concatenate([
      np.asarray(reconstruct(_pad(originals[i:i + batch_size], batch_size)))[
          :len(originals[i:i + batch_size])] for i in range(0, len(originals), batch_size)])
  attributes = {k: np.stack([e[k] for e in examples])
                for k in ("num_objects", "digit", "color", "direction")}
  err = recon.astype(np.float32) - originals.astype(np.float32)
  out = {"reconstruction": metrics.evaluate(recon, attributes),
         "original": metrics.evaluate(originals, attributes),
         "psnr": float(10 * np.log10(255.0 ** 2 / np.mean(err ** 2))),
         "mae": float(np.mean(np.abs(err)))}
  return out


def _pad(x: np.ndarray, n: int) -> np.ndarray:
  return np.concatenate([x, np.zeros((n - len(x),) + x.shape[1:], x.dtype)]) if len(x) < n else x


def export_bundle(config, workdir: str, out: str, storage_dtype: str = "float16") -> str:
  """Writes the bundle (jaxgen.pipelines.bundle) of a text-to-video run: EMA weights + its VAE."""
  from jaxgen.pipelines.bundle import save_bundle
  from jaxgen.train.tasks import t2v
  task = t2v.T2VTask(config)
  task.data_source("train")  # makes sure the latent statistics exist
  params = ckpt_lib.restore_params(workdir)  # the t2v run's EMA params
  model = t2v.model_config(config, task.tokenizer, stats=task.stats)
  bundle_params = {name: params[name] for name in ("text_encoder", *model.transformer_names)}
  bundle_params["vae"] = task.vae_params
  return save_bundle(out, model, bundle_params, task.tokenizer, storage_dtype=storage_dtype)


def export_stage(config, workdir: str, out: str, storage_dtype: str = "float16") -> str:
  """Writes the stage bundle of a TSR/SSR run (EMA weights) for jaxgen.pipelines.cascade."""
  from jaxgen.train.tasks import superres
  params = ckpt_lib.restore_params(workdir)  # the stage run's EMA params
  return superres.export(config, params, out, storage_dtype)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m jaxgen.train.export", description=__doc__)
  sub = parser.add_subparsers(dest="command", required=True)
  for name in ("vae-eval", "bundle", "stage"):
    p = sub.add_parser(name)
    p.add_argument("--config", required=True)
    p.add_argument("--workdir", required=True)
  sub.choices["vae-eval"].add_argument("--num-videos", type=int, default=256)
  sub.choices["vae-eval"].add_argument("--split", default="test", choices=("train", "test"))
  for name in ("bundle", "stage"):
    sub.choices[name].add_argument("--out", required=True)
    sub.choices[name].add_argument("--storage-dtype", default="float16",
                                   choices=("float16", "float32"))
  rest, overrides = config_lib.split_overrides(sys.argv[1:] if argv is None else argv)
  args = parser.parse_args(rest)
  config = config_lib.apply_overrides(config_lib.load(args.config), overrides)
  if args.command == "vae-eval":
    print(json.dumps(vae_oracle_metrics(config, args.workdir, args.num_videos, split=args.split),
                     indent=1))
  elif args.command == "stage":
    print(export_stage(config, args.workdir, args.out, args.storage_dtype))
  else:
    print(export_bundle(config, args.workdir, args.out, args.storage_dtype))
  return 0


if __name__ == "__main__":
  sys.exit(main())
