"""Wan 2.1's causal 3D video VAE (Wan Team 2025, §3.1), = diffusers AutoencoderKLWan.

Videos are [B, T, H, W, C] in [-1, 1] with T = 4n + 1 frames; latents are
[B, 1 + (T - 1)/4, H/8, W/8, 16] for the released model. The first frame is coded alone, later
frames in causal chunks (4 frames per encoder step, 1 latent frame per decoder step); both loops
are a `lax.scan` over chunks carrying a cache of past frames, so the compiled program's memory
does not grow with the number of frames beyond the input and output themselves.
"""

import dataclasses
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.models import vae_common as vc
from jaxgen.models.vae_wan_blocks import (AttentionBlock, CausalConv3d, MidBlock, Resample,
                                          ResidualBlock, RMSNorm, UpBlock)

Array = jax.Array

ENCODER_CHUNK = 4  # frames per encoder step after the first frame (the reference's fixed chunking)

# Per-channel statistics of Wan 2.1's latents (diffusers AutoencoderKLWan defaults).
WAN21_LATENTS_MEAN = (-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
                      0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921)
WAN21_LATENTS_STD = (2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
                     3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160)


@dataclasses.dataclass(frozen=True)
class AutoencoderKLWanConfig:
  """Architecture of Wan 2.1's video VAE (diffusers AutoencoderKLWan config names)."""
  base_dim: int = 96
  decoder_base_dim: int | None = None  # defaults to base_dim
  z_dim: int = 16
  dim_mult: tuple[int, ...] = (1, 2, 4, 4)
  num_res_blocks: int = 2
  attn_scales: tuple[float, ...] = ()  # encoder resolutions (1, 1/2, ...) with attention blocks
  temporal_downsample: tuple[bool, ...] = (False, True, True)  # per level but the last
  latents_mean: tuple[float, ...] = WAN21_LATENTS_MEAN
  latents_std: tuple[float, ...] = WAN21_LATENTS_STD
  in_channels: int = 3
  out_channels: int = 3
  dtype: Any = jnp.float32  # compute dtype; params are float32

  def __post_init__(self):
    if len(self.temporal_downsample) != len(self.dim_mult) - 1:
      raise ValueError(f"temporal_downsample={self.temporal_downsample} needs one entry per level "
                       f"but the last ({len(self.dim_mult) - 1} for dim_mult={self.dim_mult})")
    if self.temporal_factor > ENCODER_CHUNK:
      raise ValueError(f"temporal_downsample={self.temporal_downsample} compresses time by "
                       f"{self.temporal_factor}; at most {ENCODER_CHUNK} is supported")
    for name in ("latents_mean", "latents_std"):
      if len(getattr(self, name)) != self.z_dim:
        raise ValueError(f"{name} has {len(getattr(self, name))} entries; "
                         f"expected z_dim={self.z_dim}")

  @property
  def spatial_factor(self) -> int:
    """H and W compression (8 for Wan 2.1)."""
    return 2 ** (len(self.dim_mult) - 1)

  @property
  def temporal_factor(self) -> int:
    """Frames per latent frame after the first (4 for Wan 2.1)."""
    return 2 ** sum(self.temporal_downsample)

  @classmethod
  def from_diffusers(cls, cfg: dict, **overrides: Any) -> "AutoencoderKLWanConfig":
    """Config from a diffusers AutoencoderKLWan config.json dict (unused keys ignored)."""
    if cfg.get("is_residual", False):
      raise ValueError("is_residual=True (the Wan 2.2 VAE) is not supported; expected False")
    if cfg.get("patch_size") not in (None, 1):
      raise ValueError(f"patch_size={cfg['patch_size']} is not supported; expected None")
    fields = dict(
        base_dim=cfg.get("base_dim", 96),
        decoder_base_dim=cfg.get("decoder_base_dim"),
        z_dim=cfg.get("z_dim", 16),
        dim_mult=tuple(cfg.get("dim_mult", (1, 2, 4, 4))),
        num_res_blocks=cfg.get("num_res_blocks", 2),
        attn_scales=tuple(float(s) for s in cfg.get("attn_scales", ())),
        temporal_downsample=tuple(bool(b) for b in cfg.get("temperal_downsample",
                                                           (False, True, True))),
        latents_mean=tuple(float(v) for v in cfg.get("latents_mean", WAN21_LATENTS_MEAN)),
        latents_std=tuple(float(v) for v in cfg.get("latents_std", WAN21_LATENTS_STD)),
        in_channels=cfg.get("in_channels", 3),
        out_channels=cfg.get("out_channels", 3))
    fields.update(overrides)
    config = cls(**fields)
    for key, ours in (("scale_factor_spatial", config.spatial_factor),
                      ("scale_factor_temporal", config.temporal_factor)):
      if cfg.get(key) not in (None, ours):
        raise ValueError(f"{key}={cfg[key]} disagrees with the architecture's {ours}")
    return config


PRESETS: dict[str, AutoencoderKLWanConfig] = {
    # Wan-AI/Wan2.1-T2V-*-Diffusers, subfolder vae.
    "wan2.1-vae": AutoencoderKLWanConfig(),
}


class Encoder3d(nn.Module):
  """A chunk of frames [B, t, H, W, C_in] -> moments [B, t', H/8, W/8, 2z], and the new cache."""
  config: AutoencoderKLWanConfig

  @nn.compact
  def __call__(self, x: Array, cache: Any) -> tuple[Array, dict]:
    cfg, dt = self.config, self.config.dtype
    sub = lambda name: None if cache is None else cache[name]
    new = {}
    dims = [cfg.base_dim * m for m in (1,) + cfg.dim_mult]
    x, new["conv_in"] = CausalConv3d(dims[0], (3, 3, 3), dt, name="conv_in")(x, sub("conv_in"))
    k, scale = 0, 1.0
    for i, out_dim in enumerate(dims[1:]):
      for _ in range(cfg.num_res_blocks):
        name = f"down_blocks_{k}"
        x, new[name] = ResidualBlock(out_dim, dt, name=name)(x, sub(name))
        k += 1
        if scale in cfg.attn_scales:
          x = AttentionBlock(dt, name=f"down_blocks_{k}")(x)
          k += 1
      if i < len(cfg.dim_mult) - 1:
        mode = "downsample3d" if cfg.temporal_downsample[i] else "downsample2d"
        name = f"down_blocks_{k}"
        x, new[name] = Resample(mode, dt, name=name)(x, sub(name))
        k += 1
        scale /= 2.0
    x, new["mid_block"] = MidBlock(dt, name="mid_block")(x, sub("mid_block"))
    x = nn.silu(RMSNorm(name="norm_out")(x))
    x, new["conv_out"] = CausalConv3d(2 * cfg.z_dim, (3, 3, 3), dt, name="conv_out")(
        x, sub("conv_out"))
    return x, new


class Decoder3d(nn.Module):
  """A latent frame [B, 1, h, w, z] -> frames [B, 1 (first) or 4, 8h, 8w, C], and the new cache."""
  config: AutoencoderKLWanConfig

  @nn.compact
  def __call__(self, z: Array, cache: Any) -> tuple[Array, dict]:
    cfg, dt = self.config, self.config.dtype
    sub = lambda name: None if cache is None else cache[name]
    new = {}
    base = cfg.decoder_base_dim or cfg.base_dim
    dims = [base * m for m in (cfg.dim_mult[-1],) + cfg.dim_mult[::-1]]
    temporal_upsample = cfg.temporal_downsample[::-1]
    x, new["conv_in"] = CausalConv3d(dims[0], (3, 3, 3), dt, name="conv_in")(z, sub("conv_in"))
    x, new["mid_block"] = MidBlock(dt, name="mid_block")(x, sub("mid_block"))
    for i, out_dim in enumerate(dims[1:]):
      mode = None
      if i < len(cfg.dim_mult) - 1:
        mode = "upsample3d" if temporal_upsample[i] else "upsample2d"
      name = f"up_blocks_{i}"
      x, new[name] = UpBlock(out_dim, cfg.num_res_blocks + 1, mode, dt, name=name)(x, sub(name))
    x = nn.silu(RMSNorm(name="norm_out")(x))
    x, new["conv_out"] = CausalConv3d(cfg.out_channels, (3, 3, 3), dt, name="conv_out")(
        x, sub("conv_out"))
    return x, new


class AutoencoderKLWan(nn.Module):
  """Wan 2.1's video VAE: causal chunked `encode` to a diagonal Gaussian posterior and `decode`."""
  config: AutoencoderKLWanConfig

  def setup(self):
    cfg = self.config
    self.encoder = Encoder3d(cfg)
    self.quant_conv = vc.pointwise(2 * cfg.z_dim, cfg.dtype, "quant_conv")
    self.post_quant_conv = vc.pointwise(cfg.z_dim, cfg.dtype, "post_quant_conv")
    self.decoder = Decoder3d(cfg)

  def encode(self, x: Array) -> tuple[Array, Array]:
    """x: [B, 4n+1, H, W, C] in [-1, 1] -> posterior (mean, logvar) [B, 1+n, H/8, W/8, z], f32."""
    check_video(self.config, x)
    x = x.astype(self.config.dtype)
    first, cache = self.encoder(x[:, :1], None)
    n = (x.shape[1] - 1) // ENCODER_CHUNK
    per_chunk = ENCODER_CHUNK // self.config.temporal_factor
    moments = jnp.zeros((x.shape[0], 1 + n * per_chunk) + first.shape[2:], first.dtype)
    moments = jax.lax.dynamic_update_slice_in_dim(moments, first, 0, axis=1)

    def step(mdl, carry, i):
      cache, moments = carry
      chunk = jax.lax.dynamic_slice_in_dim(x, 1 + ENCODER_CHUNK * i, ENCODER_CHUNK, axis=1)
      out, cache = mdl.encoder(chunk, cache)
      return (cache, jax.lax.dynamic_update_slice_in_dim(moments, out, 1 + per_chunk * i, 1)), None

    if n:
      (_, moments), _ = nn.scan(step, variable_broadcast="params", split_rngs={"params": False})(
          self, (cache, moments), jnp.arange(n))
    return vc.split_moments(self.quant_conv(moments))

  def decode(self, z: Array, clip: bool = True) -> Array:
    """z: [B, 1+n, h, w, z] -> video [B, 4n+1, 8h, 8w, C], f32, clipped to [-1, 1] unless not clip.

    Training wants `clip=False`: the reference's clamp has no gradient outside [-1, 1].
    """
    check_latents(self.config, z)
    z = z.astype(self.config.dtype)
    post = lambda y: jnp.clip(y, -1.0, 1.0) if clip else y
    first, cache = self.decoder(self.post_quant_conv(z[:, :1]), None)
    tf = self.config.temporal_factor
    b, t = z.shape[:2]
    video = jnp.zeros((b, 1 + (t - 1) * tf) + first.shape[2:], jnp.float32)
    video = jax.lax.dynamic_update_slice_in_dim(video, post(first).astype(jnp.float32), 0, axis=1)

    def step(mdl, carry, i):
      cache, video = carry
      zi = jax.lax.dynamic_slice_in_dim(z, 1 + i, 1, axis=1)
      frames, cache = mdl.decoder(mdl.post_quant_conv(zi), cache)
      frames = post(frames).astype(jnp.float32)
      return (cache, jax.lax.dynamic_update_slice_in_dim(video, frames, 1 + tf * i, 1)), None

    if t > 1:
      (_, video), _ = nn.scan(step, variable_broadcast="params", split_rngs={"params": False})(
          self, (cache, video), jnp.arange(t - 1))
    return video

  def __call__(self, x: Array, key: Array | None = None, clip: bool = True) -> Array:
    """Reconstruction [B, T, H, W, C] of the posterior mean, or of a sample when `key` is given."""
    mean, logvar = self.encode(x)
    return self.decode(mean if key is None else vc.posterior_sample(key, mean, logvar), clip=clip)

  def normalize(self, z: Array) -> Array:
    """Posterior latents -> per-channel standardised diffusion latents: [..., z_dim]."""
    return normalize(self.config, z)

  def denormalize(self, z: Array) -> Array:
    """Inverse of `normalize`: [..., z_dim]."""
    return denormalize(self.config, z)


def normalize(config: AutoencoderKLWanConfig, z: Array) -> Array:
  """(z - latents_mean) / latents_std per channel: [..., z_dim]."""
  mean = np.asarray(config.latents_mean, np.float32)
  return (z - mean) / np.asarray(config.latents_std, np.float32)


def denormalize(config: AutoencoderKLWanConfig, z: Array) -> Array:
  """z · latents_std + latents_mean per channel: [..., z_dim]."""
  mean = np.asarray(config.latents_mean, np.float32)
  return z * np.asarray(config.latents_std, np.float32) + mean


def check_video(config: AutoencoderKLWanConfig, x: Any) -> None:
  """Raises ValueError unless x is [B, 4n+1, H, W, in_channels] with H, W multiples of 8."""
  f = config.spatial_factor
  shape = tuple(x.shape)
  if len(shape) != 5 or shape[-1] != config.in_channels:
    raise ValueError(f"x has shape {shape}; expected a video [B, T, H, W, {config.in_channels}]")
  if (shape[1] - 1) % ENCODER_CHUNK:
    raise ValueError(f"x has T={shape[1]} frames (shape {shape}); expected T = "
                     f"{ENCODER_CHUNK}n + 1 (1, 5, 9, 13, 17, ...)")
  if shape[2] % f or shape[3] % f or not shape[2] or not shape[3]:
    raise ValueError(f"x has H×W = {shape[2]}×{shape[3]} (shape {shape}); expected positive "
                     f"multiples of {f}")


def check_latents(config: AutoencoderKLWanConfig, z: Any) -> None:
  """Raises ValueError unless z is [B, t >= 1, h, w, z_dim]."""
  shape = tuple(z.shape)
  if len(shape) != 5 or shape[-1] != config.z_dim or not all(shape[1:4]):
    raise ValueError(f"z has shape {shape}; expected latents [B, t, h, w, {config.z_dim}] "
                     "with t, h, w >= 1")


def _shapes(config: AutoencoderKLWanConfig) -> dict:
  # Two chunks, so that the temporal resamplers (skipped on the first chunk) are initialised too.
  f = config.spatial_factor
  x = jnp.zeros((1, 1 + ENCODER_CHUNK, f, f, config.in_channels))
  return vc.param_shapes(AutoencoderKLWan(config), x)


def num_params(config: AutoencoderKLWanConfig) -> int:
  """Number of parameters of the model for `config` (computed without allocating them)."""
  return vc.count_params(_shapes(config))


def source_names(config: AutoencoderKLWanConfig) -> list[str]:
  """The diffusers state-dict names that `convert_params` reads."""
  return vc.source_names(_shapes(config))


def convert_params(config: AutoencoderKLWanConfig, read: Callable[[str], np.ndarray]) -> dict:
  """Flax params from a diffusers AutoencoderKLWan state dict, read tensor by tensor by name."""
  return vc.convert_tree(_shapes(config), read)
