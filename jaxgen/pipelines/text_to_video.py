"""Text -> latents -> frames: the text-to-video pipeline, compiled as one program per shape.

Prompts are tokenized on the host; text encoding, the whole guided sampling loop and
the VAE decode then run as a single jitted function.
"""

import dataclasses
import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.diffusion.samplers import SamplerConfig, make_plan, sample
from jaxgen.models.clip_text import CLIPTextModel
from jaxgen.models.tokenizers import load_tokenizer
from jaxgen.models.vae_wan import AutoencoderKLWan, denormalize, normalize
from jaxgen.models.wan import Wan
from jaxgen.pipelines import conditioning
from jaxgen.pipelines.bundle import TextToVideoConfig
from jaxgen.pipelines.pixels import to_uint8, to_unit_range


@dataclasses.dataclass(frozen=True)
class _Static:
  """Everything the compiled program depends on besides arrays."""
  model: TextToVideoConfig
  sampler: SamplerConfig
  guided: bool


class TextToVideo:
  """A loaded text-to-video model: `pipe(prompts, ...)` -> uint8 videos [N, T, H, W, 3]."""

  def __init__(self, config: TextToVideoConfig, params: dict, tokenizer_dir: str):
    self.config = config
    self.params = jax.tree.map(jnp.asarray, params)
    max_length = min(config.text_encoder.max_length, _model_max_length(tokenizer_dir))
    self.tokenizer = load_tokenizer(tokenizer_dir, max_length=max_length)

  def encode_video(self, video: np.ndarray) -> jax.Array:
    """uint8 video [B, T, H, W, 3] -> normalised latents [B, t, h, w, C] (posterior mean)."""
    mean, _ = _encode(self.config.vae, self.params["vae"], to_unit_range(video))
    return normalize(self.config.vae, mean)

  def __call__(self, prompts: str | Sequence[str], *, negative_prompt: str = "",
               num_frames: int | None = None, num_steps: int | None = None, sampler: str | None = None,
               guidance_scale: float | Sequence[float] | None = None, seed: int = 0, num_videos: int = 1,
               condition: np.ndarray | None = None, frame_mask: np.ndarray | None = None) -> np.ndarray:
    """Generates num_videos per prompt: uint8 [len(prompts) * num_videos, T, H, W, 3].

    condition (normalised latents [t, h, w, C] or [N, t, h, w, C]) with frame_mask [t] gives
    latent frames clean: image-to-video, extension, interpolation (see conditioning.task_mask).
    guidance_scale: one scale, or one per noise-level expert (config.transformer_names, from the
    highest levels down; Wan 2.2 guides its two experts apart).
    """
    cfg = self.config
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompts:
      raise ValueError("prompts=[] is not supported; expected at least one prompt")
    if num_videos < 1:
      raise ValueError(f"num_videos={num_videos} is not supported; expected an integer >= 1")
    num_frames = cfg.num_frames if num_frames is None else num_frames
    latent_shape = cfg.latent_shape(num_frames)
    sampler_config = SamplerConfig(sampler or cfg.sampler, num_steps or cfg.num_steps)
    weights = guidance_weights(cfg, sampler_config,
                               cfg.guidance_scale if guidance_scale is None else guidance_scale)
    n = len(prompts) * num_videos
    prompts = [p for p in prompts for _ in range(num_videos)]

    if frame_mask is None:
      frame_mask = np.zeros(latent_shape[0], np.float32)
      condition = np.zeros(latent_shape, np.float32)
    elif not cfg.frame_conditioning:
      raise ValueError("frame_mask is not supported: this model was trained without frame conditions")
    frame_mask = np.asarray(frame_mask, np.float32)
    condition = np.asarray(condition, np.float32)
    if frame_mask.shape != latent_shape[:1]:
      raise ValueError(f"frame_mask has shape {frame_mask.shape}; expected [{latent_shape[0]}] latent frames")
    if condition.shape[-4:] != latent_shape:
      raise ValueError(f"condition has shape {condition.shape}; expected latents {list(latent_shape)}")

    ids, mask = self.tokenizer(prompts)
    neg_ids, neg_mask = self.tokenizer([negative_prompt] * n)
    key = jax.random.key(seed)
    noise = jax.random.normal(jax.random.fold_in(key, 0), (n,) + latent_shape)
    static = _Static(cfg, sampler_config, bool(np.any(weights != 1.0)))
    video = _generate(static, self.params, ids, mask, neg_ids, neg_mask, noise,
                      jax.random.fold_in(key, 1), jnp.broadcast_to(condition, (n,) + latent_shape),
                      jnp.broadcast_to(frame_mask, (n, latent_shape[0])), weights)
    return np.asarray(to_uint8(video))


def guidance_weights(config: TextToVideoConfig, sampler_config: SamplerConfig,
                     guidance_scale: float | Sequence[float]) -> np.ndarray:
  """The guidance weight of each sampling step [num_steps]: the scale of the expert whose levels
  the step starts from, given one scale or one per expert (config.transformer_names)."""
  names = config.transformer_names
  try:
    scales = np.atleast_1d(np.asarray(guidance_scale, np.float32))
  except (TypeError, ValueError):
    scales = np.full(2, np.nan)  # not numbers: rejected below
  if scales.ndim != 1 or len(scales) not in (1, len(names)) or not np.all(np.isfinite(scales)):
    per_expert = f" or {len(names)} numbers, one per expert {names}" if len(names) > 1 else ""
    raise ValueError(f"guidance_scale={guidance_scale!r} is not supported; expected a number{per_expert}")
  if len(scales) == 1:
    return np.full(sampler_config.num_steps, scales[0])
  with jax.ensure_compile_time_eval():  # the plan stays on the host when traced (training samples)
    t = np.asarray(make_plan(sampler_config, config.schedule).t_hat)
  return scales[config.expert_index(t)]


def _model_max_length(tokenizer_dir: str) -> int:
  import transformers  # pylint: disable=g-import-not-at-top
  return transformers.AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True).model_max_length


def expert(config: TextToVideoConfig, params: dict, name: str = "transformer"):
  """(x [B, t, h, w, C], t [B], cond) -> prediction of one transformer (config.transformer_names);
  cond = {context, pooled, mask, frames}."""
  dit = getattr(config, name)
  transformer, pooled = Wan(dit), dit.pooled_text_dim is not None

  def apply(x, t, c):
    x = conditioning.with_conditions(x, c["frames"]) if config.frame_conditioning else x
    return transformer.apply({"params": params[name]}, x, t, c["context"], c["mask"],
                             c["pooled"] if pooled else None)
  return apply


def denoiser(config: TextToVideoConfig, params: dict):
  """The model's denoiser (x, t, cond) -> prediction; with noise-level experts, each call runs the
  expert of its level, which the batch shares (as in sampling)."""
  experts = [expert(config, params, name) for name in config.transformer_names]
  if len(experts) == 1:
    return experts[0]
  return lambda x, t, c: jax.lax.switch(config.expert_index(t[0]), experts, x, t, c)


@functools.partial(jax.jit, static_argnums=0)
def _encode(vae_config, params, video):
  return AutoencoderKLWan(vae_config).apply({"params": params}, video, method=AutoencoderKLWan.encode)


@functools.partial(jax.jit, static_argnums=0)
def _generate(static: _Static, params, ids, mask, neg_ids, neg_mask, noise, key, z_cond, frame_mask,
              guidance_scale):
  cfg = static.model
  text = CLIPTextModel(cfg.text_encoder)
  channels = conditioning.condition_channels(z_cond, frame_mask)

  def condition(i, m):
    context, pooled = text.apply({"params": params["text_encoder"]}, i, m)
    return {"context": context, "pooled": pooled, "mask": m, "frames": channels}

  cond, negative = condition(ids, mask), condition(neg_ids, neg_mask)
  z = sample(denoiser(cfg, params), noise, cond, config=static.sampler, schedule=cfg.schedule,
             prediction_type=cfg.prediction_type, key=key, guidance_scale=guidance_scale,
             negative_cond=negative if static.guided else None)
  z = conditioning.paste(z, z_cond, frame_mask)
  return AutoencoderKLWan(cfg.vae).apply({"params": params["vae"]}, denormalize(cfg.vae, z),
                                         method=AutoencoderKLWan.decode)
