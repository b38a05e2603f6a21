"""Text-to-video task: a latent Wan DiT and a CLIP-architecture text encoder trained jointly with
flow matching (Lipman et al. 2023; SD3's rectified flow, velocity target eps − x_0) on cached VAE
latents, with Open-Sora frame masks and caption dropout for classifier-free guidance (Ho &
Salimans 2022: the empty caption is the unconditional input). With `boundary_ratio` (and
`boundary_ratio_2`) set, two (three) noise-level experts (eDiff-I; Wan 2.2) share the text encoder
and each batch: each trains on its share of it (`expert_shares`; equal by default), with levels
from its own interval, and may differ from the others in some fields (`expert_dit`); the text
encoder learns through the experts named in `text_encoder_experts` (default: `transformer`, the
highest levels).
"""

import dataclasses
import functools
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxgen.data import moving_digits as md
from jaxgen.data import vocab
from jaxgen.diffusion import losses
from jaxgen.diffusion import parameterization as param
from jaxgen.diffusion import schedules
from jaxgen.diffusion.samplers import SamplerConfig, sample
from jaxgen.models import vae_wan as vw
from jaxgen.models.clip_text import CLIPTextConfig, CLIPTextModel
from jaxgen.models.wan import Wan, WanConfig
from jaxgen.pipelines import conditioning
from jaxgen.pipelines import text_to_video
from jaxgen.pipelines.bundle import TRANSFORMER_NAMES, TextToVideoConfig
from jaxgen.pipelines.pixels import to_uint8
from jaxgen.train import checkpoint as ckpt_lib
from jaxgen.train import latents as latents_lib
from jaxgen.train import masks
from jaxgen.train.tasks import data
from jaxgen.train.tasks import vae as vae_task

Array = jax.Array


def vae_config(config: ml_collections.ConfigDict, stats: tuple | None = None
               ) -> vw.AutoencoderKLWanConfig:
  """The frozen VAE's config, with the latent statistics `stats` = (mean, std) if given."""
  cfg = vae_task.vae_config(ml_collections.ConfigDict({"model": config.vae.model}))
  if stats is None:
    return cfg
  return dataclasses.replace(cfg, latents_mean=tuple(stats[0]), latents_std=tuple(stats[1]))


def model_config(config: ml_collections.ConfigDict, tokenizer: Any, dtype: Any = jnp.float32,
                 stats: tuple | None = None) -> TextToVideoConfig:
  """The bundle config (text encoder, transformer, VAE, sampling defaults) of an experiment."""
  t, d, s = config.text, config.dit, config.sampling
  z = config.vae.model.z_dim
  boundary, boundary_2 = config.get("boundary_ratio"), config.get("boundary_ratio_2")
  text = CLIPTextConfig(
      vocab_size=len(tokenizer), hidden_size=t.width, intermediate_size=t.mlp_dim,
      num_layers=t.num_layers, num_heads=t.num_heads, max_length=vocab.MAX_LENGTH,
      hidden_act="gelu", eos_token_id=tokenizer.eos_token_id, dtype=dtype,
      causal=t.get("causal", True), attention_window=t.get("window"))
  transformer = WanConfig(
      patch_size=tuple(d.patch_size), in_channels=2 * z + 1, out_channels=z,
      num_layers=d.num_layers, num_heads=d.num_heads, head_dim=d.head_dim, ffn_dim=d.ffn_dim,
      text_dim=t.width, freq_dim=d.freq_dim, rope_max_seq_len=d.rope_max_seq_len,
      attention=d.attention, dtype=dtype, remat_policy=d.remat_policy,
      pooled_text_dim=t.width if d.get("pooled_text", False) else None,
      pos_embed=d.get("pos_embed", None), rope_theta=d.get("rope_theta", 10000.0))
  # `expert_dit`: {expert name: fields of `dit` it sets otherwise}, e.g. a coarser patch size for
  # the high-noise expert, which reads only the layout and the motion.
  overrides = config.get("expert_dit") or {}
  unknown = sorted(set(overrides) - set(TRANSFORMER_NAMES))
  if unknown:
    raise ValueError(f"expert_dit names {unknown}; expected names among "
                     f"{list(TRANSFORMER_NAMES)}")
  dits = {}
  for name in TRANSFORMER_NAMES:
    fields = dict(overrides.get(name, {}))
    if "patch_size" in fields:
      fields["patch_size"] = tuple(fields["patch_size"])
    try:
      dits[name] = dataclasses.replace(transformer, **fields)
    except TypeError:
      raise ValueError(f"expert_dit.{name}={fields!r}; expected fields of WanConfig") from None
  return TextToVideoConfig(
      text_encoder=text, transformer=dits["transformer"], vae=vae_config(config, stats),
      schedule=schedules.FlowSchedule(shift=config.flow_shift), prediction_type="flow",
      sampler=s.sampler, num_steps=s.num_steps, guidance_scale=s.guidance_scale,
      description=config.description, boundary_ratio=boundary,
      transformer_2=None if boundary is None else dits["transformer_2"],
      boundary_ratio_2=boundary_2,
      transformer_3=None if boundary_2 is None else dits["transformer_3"])


def expert_edges(size: int, shares: tuple[float, ...]) -> np.ndarray:
  """Where each expert's examples of `size` start and end, int [experts + 1] from 0 to `size`:
  each takes its share of their sum, rounded so that the counts add up to `size`."""
  edges = np.cumsum((0.0,) + tuple(shares)) / sum(shares) * size
  return edges.round().astype(int)


class T2VTask:
  """Loss, init and samples of the text-to-video model; `config` is the experiment's ConfigDict."""

  batch_keys = ("latents", "latents_std")

  def __init__(self, config: ml_collections.ConfigDict, dtype: Any = jnp.float32):
    masks.check_probabilities(config.masks)
    self.config, self.dtype = config, dtype
    self.tokenizer = vocab.build_tokenizer()
    # The bundle config checks the experts' boundaries; the latent statistics are not needed here.
    self.experts = experts = model_config(config, self.tokenizer).transformer_names
    if config.batch_size < len(experts):
      raise ValueError(f"batch_size={config.batch_size}; expected at least one example per "
                       f"noise-level expert ({len(experts)})")
    self.video_batch_size = config.get("video_batch_size")  # see loss; None: all videos
    b, n = config.batch_size, self.video_batch_size
    if n is not None and not 0 <= n <= b:
      raise ValueError(f"video_batch_size={n} with batch_size={b}; expected between 0 and the "
                       f"batch size")
    # Each expert's share of the videos and of the images (default: equal).
    shares = config.get("expert_shares") or {}
    self.expert_shares = {}
    # How many of each batch's examples train as videos, then as images (see loss).
    self.part_sizes = sizes = {"videos": b if n is None else n, "images": 0 if n is None else b - n}
    for part, size in sizes.items():
      share = tuple(shares.get(part, (1,) * len(experts)))
      if len(share) != len(experts) or min(share) < 0 or not sum(share):
        raise ValueError(f"expert_shares.{part}={share!r}; expected {len(experts)} non-negative "
                         f"shares, one per noise-level expert {experts}, not all zero")
      counts = np.diff(expert_edges(size, share))
      if size and any(c == 0 < s for c, s in zip(counts, share)):
        raise ValueError(f"video_batch_size={n} with batch_size={b} gives the experts {experts} "
                         f"{counts.tolist()} {part} (expert_shares.{part}={share}); expected at "
                         f"least one each where its share is not zero")
      self.expert_shares[part] = share
    idle = [e for i, e in enumerate(experts)
            if not any(size and self.expert_shares[p][i] for p, size in sizes.items())]
    if idle:
      raise ValueError(f"expert_shares={self.expert_shares} with video_batch_size={n} and "
                       f"batch_size={b} gives {idle} no examples; expected a share of the videos "
                       f"or of the images for every expert")
    # The experts whose gradient reaches the text encoder (see loss).
    self.text_encoder_experts = tuple(config.get("text_encoder_experts", ("transformer",)))
    if not set(self.text_encoder_experts) <= set(experts):
      raise ValueError(f"text_encoder_experts={self.text_encoder_experts!r}; expected names among "
                       f"{experts}")
    empty = self.tokenizer([""], padding="max_length", max_length=vocab.MAX_LENGTH,
                           return_tensors="np")
    self.empty_ids = empty["input_ids"][0].astype(np.int32)  # <s> </s> <pad>...
    self.empty_mask = empty["attention_mask"][0].astype(np.int32)

  # ---- data ------------------------------------------------------------------------------------
  @property
  def cache_dir(self) -> str:
    return os.path.expanduser(self.config.vae.latents_dir)

  def data_source(self, split: str) -> latents_lib.LatentSource:
    """Moving Digits captions with their cached VAE latents (encoded on first use)."""
    source = data.moving_digits(self.config.data, split)
    if split != "train" and not os.path.exists(os.path.join(self.cache_dir, "train.npz")):
      self.data_source("train")  # the train split defines the latent statistics
    cache = latents_lib.cached(self.cache_dir, split, vae_config(self.config),
                               os.path.expanduser(self.config.vae.workdir), source)
    return latents_lib.LatentSource(cache, source)

  def curriculum(self) -> tuple[np.ndarray, int, np.ndarray | None] | None:
    """The train examples with `curriculum_digits` digits (default 1), for how many steps
    (`curriculum_steps`) they alone are drawn first, and the batch rows they fill then: those of
    the experts `curriculum_experts` (None: all rows)."""
    steps = self.config.get("curriculum_steps", 0)
    if not steps:
      return None
    d, digits = self.config.data, self.config.get("curriculum_digits", 1)
    if digits not in range(1, md.MAX_OBJECTS + 1):
      raise ValueError(f"curriculum_digits={digits!r}; expected 1 to {md.MAX_OBJECTS} (the "
                       f"digits a Moving Digits video shows)")
    subset = np.array([i for i in range(d.train_size)
                       if len(md.example_objects(d.seed, "train", i)) == digits])
    names = self.config.get("curriculum_experts")
    if names is None:
      return subset, steps, None
    names = (names,) if isinstance(names, str) else tuple(names)
    unknown = [n for n in names if n not in self.experts]
    if not names or unknown:
      raise ValueError(f"curriculum_experts={names!r}; expected some of the noise-level experts "
                       f"{self.experts}, or None for all")
    rows = np.concatenate([r for name, r in self.expert_rows().items() if name in names])
    if not len(rows):
      raise ValueError(f"curriculum_experts={names!r} take no examples (expert_shares="
                       f"{self.expert_shares}); expected experts with a share")
    return subset, steps, rows

  def expert_rows(self) -> dict[str, np.ndarray]:
    """The batch rows each expert trains on, videos first (see loss and _flow_loss)."""
    rows, start = {name: [] for name in self.experts}, 0
    for part, size in self.part_sizes.items():
      edges = start + expert_edges(size, self.expert_shares[part])
      start += size
      for name, lo, hi in zip(self.experts, edges[:-1], edges[1:]):
        rows[name].append(np.arange(lo, hi))
    return {name: np.concatenate(r) for name, r in rows.items()}

  @functools.cached_property
  def stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
    return latents_lib.read_stats(self.cache_dir)

  @functools.cached_property
  def model(self) -> TextToVideoConfig:
    return model_config(self.config, self.tokenizer, self.dtype, self.stats)

  # ---- model -----------------------------------------------------------------------------------
  def init(self, key: Array, batch: dict[str, Array]) -> dict:
    """Boxed params {'text_encoder', *model.transformer_names} for batches like `batch`."""
    cfg = self.model
    k_text, *k_dits = jax.random.split(key, 1 + len(cfg.transformer_names))
    ids = batch["input_ids"][:1]
    params = {"text_encoder": CLIPTextModel(cfg.text_encoder).init(k_text, ids)["params"]}
    z = batch["latents"][:1]
    context = jnp.zeros((1, ids.shape[1], cfg.text_encoder.hidden_size))
    for name, k in zip(cfg.transformer_names, k_dits):
      dit = getattr(cfg, name)
      x = jnp.zeros(z.shape[:-1] + (dit.in_channels,))
      pooled = None if dit.pooled_text_dim is None else jnp.zeros((1, dit.pooled_text_dim))
      params[name] = Wan(dit).init(k, x, jnp.zeros((1,)), context, None, pooled)["params"]
    return params

  def expert(self, params: dict, name: str):
    """One transformer of model.transformer_names: (x [B, t, h, w, z], t [B], cond) -> velocity,
    cond = {context, pooled, mask, frames}."""
    return text_to_video.expert(self.model, params, name)

  def denoiser(self, params: dict):
    """The sampling denoiser: the expert of each call's (shared) noise level."""
    return text_to_video.denoiser(self.model, params)

  def encode_text(self, params: dict, ids: Array, mask: Array) -> tuple[Array, Array]:
    """ids, mask: [B, L] -> (context [B, L, D], pooled [B, D])."""
    return CLIPTextModel(self.model.text_encoder).apply(
        {"params": params["text_encoder"]}, ids, mask)

  def normalized_latents(self, batch: dict[str, Array], key: Array | None) -> Array:
    """A posterior sample (the mean when key is None), standardised: [B, t, h, w, z]."""
    z = batch["latents"]
    if key is not None:
      z = z + batch["latents_std"] * jax.random.normal(key, z.shape)
    return vw.normalize(self.model.vae, z)

  def loss(self, params: dict, batch: dict[str, Array], key: Array) -> tuple[Array, dict]:
    """Masked flow-matching loss of a batch of latents [B, t, h, w, z] and captions [B, L].

    With `video_batch_size` = n < B, the first n examples are videos and the others train as
    images (n = 0: images only), their first latent frame alone: image-video joint training
    (Imagen Video §3, Open-Sora, Wan). A causal VAE's first latent frame encodes the first frame
    by itself, so the image is exactly what the video starts with, at the same positions, for
    1/t of the cost.
    """
    cfg = self.config
    k_post, k_drop, k_level, k_noise, k_mask = jax.random.split(key, 5)
    x0 = self.normalized_latents(batch, k_post)
    b = x0.shape[0]
    n = b if self.video_batch_size is None else self.video_batch_size
    drop = jax.random.bernoulli(k_drop, cfg.caption_dropout, (b, 1))
    ids = jnp.where(drop, self.empty_ids, batch["input_ids"])
    mask = jnp.where(drop, self.empty_mask, batch["attention_mask"])
    context, pooled = self.encode_text(params, ids, mask)
    text = {"context": context, "pooled": pooled, "mask": mask.astype(bool)}
    frame_mask = masks.frame_masks(k_mask, n, x0.shape[1], cfg.masks)
    loss = 0.0
    if n:
      loss += self._flow_loss(params, x0[:n], frame_mask, jax.tree.map(lambda v: v[:n], text),
                              self.expert_shares["videos"], k_level, k_noise)
    if n < b:
      images = x0[n:, :1]
      loss += self._flow_loss(params, images, jnp.zeros(images.shape[:2]),
                              jax.tree.map(lambda v: v[n:], text), self.expert_shares["images"],
                              jax.random.fold_in(k_level, 1), jax.random.fold_in(k_noise, 1))
    return loss, {"given_frames": jnp.mean(frame_mask) if n else 0.0}

  def _flow_loss(self, params: dict, x0: Array, frame_mask: Array, text: dict,
                 shares: tuple[float, ...], k_level: Array, k_noise: Array) -> Array:
    """Mean flow-matching loss over the frames frame_mask [B, t] leaves to generate."""
    cfg, model = self.config, self.model
    b = x0.shape[0]
    logit_normal = tuple(cfg.logit_normal) if cfg.logit_normal else None
    # Each transformer takes its share of the batch, with levels from its own interval.
    intervals = model.level_intervals
    splits = expert_edges(b, shares)
    levels = [losses.sample_noise_level(model.schedule, k, n, logit_normal=logit_normal,
                                        interval=interval)
              for k, n, interval in zip(jax.random.split(k_level, len(intervals)),
                                        np.diff(splits), intervals.values())]
    timestep, alpha, sigma = (jnp.concatenate(v) for v in zip(*levels))
    eps = jax.random.normal(k_noise, x0.shape)
    x_t = param.q_sample(x0, eps, alpha, sigma)
    cond = text | {"frames": conditioning.condition_channels(x0, frame_mask)}
    # By default the text encoder learns through the high-noise expert only. Through both of two
    # experts, it kept the colour words, which the low-noise expert reads, and flattened the
    # direction and place words before the high-noise expert came to use them (2,000 steps:
    # swapping them changed the loss by <= 0.5%); trained through levels t >= 0.8 alone, the same
    # encoder and DiT learnt them within 300 steps on one-digit videos
    # (experiments/interval_probe.py).
    prediction = []
    for name, i, j in zip(model.transformer_names, splits, splits[1:]):
      if i == j:
        continue  # no share of this part
      part = jax.tree.map(lambda v, i=i, j=j: v[i:j], cond)
      if name not in self.text_encoder_experts:
        part |= {key: jax.lax.stop_gradient(part[key]) for key in ("context", "pooled")}
      prediction.append(self.expert(params, name)(x_t[i:j], timestep[i:j], part))
    prediction = jnp.concatenate(prediction)
    generated = (1.0 - frame_mask)[:, :, None, None, None]
    per_example = losses.diffusion_loss(prediction, x0, eps, alpha, sigma, "flow", mask=generated)
    return jnp.mean(per_example)

  # ---- samples ---------------------------------------------------------------------------------
  @functools.cached_property
  def vae_params(self) -> dict:
    """The frozen VAE's EMA params (numpy), read once; concrete even when first used under jit."""
    with jax.ensure_compile_time_eval():
      return ckpt_lib.restore_params(os.path.expanduser(self.config.vae.workdir))

  def generate(self, params: dict, ids: Array, mask: Array, key: Array, num_frames: int) -> Array:
    """Videos float32 [B, num_frames, H, W, 3] in [-1, 1] for captions ids/mask [B, L], with
    guidance."""
    cfg, s = self.model, self.config.sampling
    shape = (ids.shape[0],) + cfg.latent_shape(num_frames)
    frames = conditioning.condition_channels(jnp.zeros(shape), jnp.zeros(shape[:2]))
    empty_ids = jnp.broadcast_to(self.empty_ids, ids.shape)
    empty_mask = jnp.broadcast_to(self.empty_mask, mask.shape)
    context, pooled = self.encode_text(params, ids, mask)
    cond = {"context": context, "pooled": pooled, "mask": mask.astype(bool), "frames": frames}
    context, pooled = self.encode_text(params, empty_ids, empty_mask)
    negative = {"context": context, "pooled": pooled, "mask": empty_mask.astype(bool),
                "frames": frames}
    sampler = SamplerConfig(s.sampler, s.num_steps)
    z = sample(self.denoiser(params), jax.random.normal(key, shape), cond, config=sampler,
               schedule=cfg.schedule, prediction_type="flow", negative_cond=negative,
               guidance_scale=text_to_video.guidance_weights(cfg, sampler, s.guidance_scale))
    return vw.AutoencoderKLWan(cfg.vae).apply(
        {"params": self.vae_params}, vw.denormalize(cfg.vae, z), method=vae_task.decode_unrolled)

  def samples(self, params: dict, batch: dict[str, Array], key: Array) -> Array:
    """Each test video (its VAE reconstruction) above a sample for its caption: uint8
    [B, 2, T, H, W, 3]; an image model (video_batch_size=0) draws first frames (T = 1)."""
    cfg = self.model
    latents = batch["latents"][:, :1] if self.video_batch_size == 0 else batch["latents"]
    real = vw.AutoencoderKLWan(cfg.vae).apply(
        {"params": self.vae_params}, latents, method=vae_task.decode_unrolled)
    fake = self.generate(params, batch["input_ids"], batch["attention_mask"], key,
                         num_frames=real.shape[1])
    return jnp.stack([to_uint8(real), to_uint8(fake)], axis=1)
