"""Latent caching for the text-to-video stage: the trained VAE encodes every video once.

`cache_dir/{split}.npz` holds the posterior mean and std float16 [N, t, h, w, z] of each video of
a split (in source order); `cache_dir/stats.json` the per-channel mean and std of the train
means, which standardise the diffusion latents (as Wan's `latents_mean/std`).
"""

import functools
import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import files
from jaxgen.models import vae_wan as vw
from jaxgen.pipelines.pixels import to_unit_range
from jaxgen.train import checkpoint as ckpt_lib

STATS_FILE = "stats.json"


@functools.partial(jax.jit, static_argnums=0)
def _encode(config: vw.AutoencoderKLWanConfig, params: Any, video: jax.Array):
  from jaxgen.train import fast_conv
  from jaxgen.train.tasks import vae
  with fast_conv.causal_conv_as_2d():  # the same function as AutoencoderKLWan.encode, faster on CPU
    mean, logvar = vw.AutoencoderKLWan(config).apply(
        {"params": params}, to_unit_range(video), method=vae.encode_unrolled)
  return mean, jnp.exp(0.5 * logvar)


def encode_source(config: vw.AutoencoderKLWanConfig, params: Any, source,
                  batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
  """Posterior (mean, std) float16 [N, t, h, w, z] of every `source[i]['video']`, in order."""
  from tqdm import tqdm
  means, stds = [], []
  for start in tqdm(range(0, len(source), batch_size), desc="encoding latents", leave=False):
    index = list(range(start, min(start + batch_size, len(source))))
    video = np.stack([source[i]["video"] for i in index])
    pad = batch_size - len(index)  # one compiled shape: pad the last batch
    if pad:
      video = np.concatenate([video, np.zeros((pad,) + video.shape[1:], video.dtype)])
    mean, std = jax.device_get(_encode(config, params, video))
    means.append(mean[:len(index)].astype(np.float16))
    stds.append(std[:len(index)].astype(np.float16))
  return np.concatenate(means), np.concatenate(stds)


def channel_stats(mean: np.ndarray) -> tuple[list[float], list[float]]:
  """Per-channel mean and std over all positions of latents [N, t, h, w, z]."""
  flat = mean.reshape(-1, mean.shape[-1]).astype(np.float64)
  return flat.mean(0).tolist(), flat.std(0).tolist()


def cached(cache_dir: str, split: str, config: vw.AutoencoderKLWanConfig, vae_workdir: str,
           source) -> dict[str, np.ndarray]:
  """{'mean', 'std'} latents of `split`, encoded and written on first use (atomically)."""
  path = os.path.join(cache_dir, f"{split}.npz")
  if not os.path.exists(path):
    os.makedirs(cache_dir, exist_ok=True)
    mean, std = encode_source(config, ckpt_lib.restore_params(vae_workdir), source)
    files.write_file(path, lambda tmp: np.savez(tmp, mean=mean, std=std))
    if split == "train":
      write_stats(cache_dir, *channel_stats(mean))
  with np.load(path) as data:
    return {"mean": data["mean"], "std": data["std"]}


def write_stats(cache_dir: str, mean: list[float], std: list[float]) -> None:
  with open(os.path.join(cache_dir, STATS_FILE), "w") as f:
    json.dump({"latents_mean": mean, "latents_std": std}, f, indent=1)


def read_stats(cache_dir: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
  """(latents_mean, latents_std) per channel, from the train split's cache."""
  path = os.path.join(cache_dir, STATS_FILE)
  if not os.path.exists(path):
    raise ValueError(f"{path} is missing: encode the train split first (T2VTask.data_source)")
  with open(path) as f:
    stats = json.load(f)
  return tuple(stats["latents_mean"]), tuple(stats["latents_std"])


class LatentSource:
  """Moving Digits examples with their cached latents: source[i] -> {latents, latents_std,
  caption, num_objects, digit, color, direction}."""

  def __init__(self, latents: dict[str, np.ndarray], source):
    if len(latents["mean"]) != len(source):
      raise ValueError(f"latents: {len(latents['mean'])} cached for a split of {len(source)} "
                       "examples; delete the stale cache to re-encode")
    self.latents, self.source = latents, source

  def __len__(self) -> int:
    return len(self.source)

  def _item(self, i: int, example: dict) -> dict:
    out = {k: v for k, v in example.items() if k != "video"}
    out["latents"] = self.latents["mean"][i].astype(np.float32)
    out["latents_std"] = self.latents["std"][i].astype(np.float32)
    return out

  def __getitem__(self, i: int) -> dict:
    return self._item(i, self.source[i])

  def __getitems__(self, index: list[int]) -> list[dict]:
    getitems = getattr(self.source, "__getitems__", None)
    examples = getitems(index) if getitems else [self.source[i] for i in index]
    return [self._item(i, e) for i, e in zip(index, examples)]
