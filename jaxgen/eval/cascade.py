"""Oracle evaluation of the cascade (Imagen Video, Ho et al. 2022) on Moving Digits.

`evaluate_stage`: a TSR/SSR stage against naive upsampling (frame repetition, bilinear) of the
same input, on held-out ground truth rendered at the stage's output size and frame rate, with the
lower-stage input made from it as in training: PSNR to the truth, the oracle's metrics and how
closely each object follows the truth's path.
`evaluate_cascade`: held-out prompts through base -> stages, judged after every stage at that
stage's size and frame rate, with the time each stage takes.
"""

import dataclasses
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.data import moving_digits as md
from jaxgen.eval import metrics
from jaxgen.pipelines import bundle_files
from jaxgen.pipelines import cascade as cascade_lib
from jaxgen.pipelines import upsample
from jaxgen.pipelines.pixels import to_uint8, to_unit_range

ATTRIBUTE_KEYS = ("num_objects", "digit", "color", "direction")


def psnr(videos: np.ndarray, truth: np.ndarray) -> np.ndarray:
  """Per-video PSNR (dB, peak 255) float [N] of uint8 videos [N, ...] against the truth."""
  err = (videos.astype(np.float64) - truth.astype(np.float64)) ** 2
  mse = np.maximum(err.reshape(len(videos), -1).mean(-1), 1e-10)
  return 10.0 * np.log10(255.0 ** 2 / mse)


def _examples(num_videos: int, data_seed: int, scale: int = 1, rate: int = 1):
  """Held-out test-split examples (handwriting training never saw): videos and attributes."""
  examples = [md.example(data_seed, "test", i, scale=scale, rate=rate) for i in range(num_videos)]
  attributes = {k: np.stack([e[k] for e in examples]) for k in ATTRIBUTE_KEYS}
  return [str(e["caption"]) for e in examples], np.stack([e["video"] for e in examples]), attributes


def _batches(n: int, batch_size: int):
  return [slice(b, min(b + batch_size, n)) for b in range(0, n, batch_size)]


def evaluate_stage(path: str, *, num_videos: int = 64, batch_size: int = 16, seed: int = 0,
                   data_seed: int = 0, steps: int | None = None, sampler: str | None = None,
                   guidance: float | None = None, aug_level: float | None = None) -> dict:
  """A stage bundle at `path` against naive upsampling on held-out ground truth.

  steps, sampler, guidance, aug_level: sampling settings in place of the bundle's (None: its own).
  """
  from jaxgen.models.tokenizers import load_tokenizer  # pylint: disable=g-import-not-at-top

  if guidance is not None and not isinstance(guidance, (int, float)):
    raise ValueError(f"guidance={guidance!r} is not supported for a stage; expected one number "
                     "(a stage has one network, no noise-level experts)")
  config, params = cascade_lib.load_stage(path)
  config = dataclasses.replace(
      config, sampler=dataclasses.replace(config.sampler, name=sampler or config.sampler.name,
                                          num_steps=steps or config.sampler.num_steps),
      guidance_scale=config.guidance_scale if guidance is None else guidance,
      aug_level=config.aug_level if aug_level is None else aug_level)
  params = jax.tree.map(jnp.asarray, params)
  tokenizer = load_tokenizer(os.path.join(path, bundle_files.TOKENIZER_DIR),
                             max_length=config.text_encoder.max_length)
  tf, sf = config.model.temporal_factor, config.model.spatial_factor
  prompts, truth, attributes = _examples(num_videos, data_seed, scale=sf, rate=tf)
  guided = config.guidance_scale != 1.0
  outputs, naive, seconds = [], [], []
  for i, rows in enumerate(_batches(num_videos, batch_size)):
    low = upsample.downsample(to_unit_range(truth[rows]), tf, sf)
    ids, mask = tokenizer(prompts[rows])
    neg_ids, neg_mask = tokenizer([""] * len(ids))
    start = time.perf_counter()
    out = cascade_lib.run_stage(config, guided, params, low, ids, mask, neg_ids, neg_mask,
                                jax.random.fold_in(jax.random.key(seed), i))
    outputs.append(np.asarray(to_uint8(out)))
    seconds.append(time.perf_counter() - start)
    naive.append(np.asarray(to_uint8(upsample.upsample(low, tf, sf))))
  outputs, naive = np.concatenate(outputs), np.concatenate(naive)
  judge = lambda v: metrics.evaluate(v, attributes, real_videos=truth, rate=tf, paired=True)
  return {
      "stage": path, "kind": config.model.kind, "input_shape": list(low.shape[1:4]),
      "output_shape": list(truth.shape[1:4]), "sampler": config.sampler.name,
      "steps": config.sampler.num_steps, "aug_level": config.aug_level,
      "guidance": config.guidance_scale, "num_videos": num_videos, "batch_size": batch_size,
      "psnr_db": {"stage": float(psnr(outputs, truth).mean()),
                  "naive": float(psnr(naive, truth).mean())},
      "oracle": {"stage": judge(outputs), "naive": judge(naive), "ground_truth": judge(truth)},
      "seconds_per_batch": _seconds(seconds),
  }


def _seconds(per_batch: list[float]) -> dict[str, float]:
  """The first batch's time (compilation included) and the median of the others."""
  rest = per_batch[1:]
  return {"first_batch": round(per_batch[0], 2),
          "median": round(float(np.median(rest)), 2) if rest else None}


def evaluate_cascade(name: str, *, num_videos: int = 64, batch_size: int = 16, seed: int = 0,
                     data_seed: int = 0) -> dict:
  """Held-out prompts through the named cascade; the oracle's metrics after every stage."""
  pipe, note = cascade_lib.load_cascade(name)
  prompts, _, attributes = _examples(num_videos, data_seed)
  stages, times = None, []
  for i, rows in enumerate(_batches(num_videos, batch_size)):
    outs = pipe(prompts[rows], seed=seed + i, return_stages=True)
    stages = list(outs) if stages is None else [
        np.concatenate([a, o]) for a, o in zip(stages, outs)]
    times.append(dict(pipe.times))
  results, rate, scale = [], 1, 1
  for i, (videos, stage_name) in enumerate(zip(stages, times[0])):
    if i:
      m = pipe.config.stages[i - 1].model
      rate, scale = rate * m.temporal_factor, scale * m.spatial_factor
    _, truth, _ = _examples(num_videos, data_seed, scale=scale, rate=rate)
    results.append({"stage": stage_name, "output_shape": list(videos.shape[1:4]),
                    "seconds_per_batch": _seconds([t[stage_name] for t in times]),
                    **metrics.evaluate(videos, attributes, real_videos=truth, rate=rate)})
  out = {"model": name, "num_videos": num_videos, "batch_size": batch_size, "seed": seed,
         "stages": results}
  if note:
    out["note"] = note
  return out
