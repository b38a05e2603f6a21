"""Stable Diffusion's KL-regularised image autoencoder (Rombach et al. 2022, "LDM").

The same model as diffusers' AutoencoderKL.

Images are [B, H, W, C] in [-1, 1]; latents are [B, H/f, W/f, latent_channels] with
f = 2^(len(block_out_channels) - 1).
"""

import dataclasses
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.models import vae_common as vc

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class AutoencoderKLConfig:
  """Architecture of an AutoencoderKL (field names as in its diffusers config.json)."""
  in_channels: int = 3
  out_channels: int = 3
  block_out_channels: tuple[int, ...] = (128, 256, 512, 512)
  layers_per_block: int = 2  # resnets per encoder level; the decoder has one more
  latent_channels: int = 4
  norm_num_groups: int = 32
  scaling_factor: float = 0.18215  # LDM §4.3.2: rescales latents to unit variance
  shift_factor: float | None = None  # subtracted before scaling (SD3/FLUX-style VAEs)
  latents_mean: tuple[float, ...] | None = None  # per-channel statistics, when the model has them
  latents_std: tuple[float, ...] | None = None
  use_quant_conv: bool = True
  use_post_quant_conv: bool = True
  mid_block_add_attention: bool = True
  dtype: Any = jnp.float32  # compute dtype; params are float32

  @property
  def downscale_factor(self) -> int:
    """Spatial compression f: each level but the last halves H and W."""
    return 2 ** (len(self.block_out_channels) - 1)

  @classmethod
  def from_diffusers(cls, cfg: dict, **overrides: Any) -> "AutoencoderKLConfig":
    """Config from a diffusers AutoencoderKL config.json dict (unused keys ignored)."""
    n = len(cfg.get("block_out_channels", (64,)))
    for key, expected in (("down_block_types", "DownEncoderBlock2D"),
                          ("up_block_types", "UpDecoderBlock2D")):
      types = tuple(cfg.get(key, (expected,) * n))
      if types != (expected,) * n:
        raise ValueError(f"{key}={types} is not supported; expected {n} × {expected!r}")
    act = cfg.get("act_fn", "silu")
    if act not in ("silu", "swish"):
      raise ValueError(f"act_fn={act!r} is not supported; expected 'silu'")
    tup = lambda v: None if v is None else tuple(float(x) for x in v)
    fields = dict(
        in_channels=cfg.get("in_channels", 3),
        out_channels=cfg.get("out_channels", 3),
        block_out_channels=tuple(cfg.get("block_out_channels", (64,))),
        layers_per_block=cfg.get("layers_per_block", 1),
        latent_channels=cfg.get("latent_channels", 4),
        norm_num_groups=cfg.get("norm_num_groups", 32),
        scaling_factor=float(cfg.get("scaling_factor", 0.18215)),
        shift_factor=cfg.get("shift_factor"),
        latents_mean=tup(cfg.get("latents_mean")),
        latents_std=tup(cfg.get("latents_std")),
        use_quant_conv=cfg.get("use_quant_conv", True),
        use_post_quant_conv=cfg.get("use_post_quant_conv", True),
        mid_block_add_attention=cfg.get("mid_block_add_attention", True))
    fields.update(overrides)
    return cls(**fields)


PRESETS: dict[str, AutoencoderKLConfig] = {
    # stabilityai/sd-vae-ft-ema: the SD 1.x autoencoder (f8, 4 latent channels).
    "sd-vae-ft-ema": AutoencoderKLConfig(),
}


class ResnetBlock(nn.Module):
  """Pre-norm residual block (GroupNorm, SiLU, 3×3 conv) ×2 with a 1×1 shortcut: [B, H, W, C]."""
  features: int
  groups: int
  dtype: Any

  @nn.compact
  def __call__(self, x: Array) -> Array:
    h = nn.silu(vc.group_norm(self.groups, "norm1")(x).astype(self.dtype))
    h = vc.conv(self.features, (3, 3), self.dtype, "conv1", padding=1)(h)
    h = nn.silu(vc.group_norm(self.groups, "norm2")(h).astype(self.dtype))
    h = vc.conv(self.features, (3, 3), self.dtype, "conv2", padding=1)(h)
    if x.shape[-1] != self.features:
      x = vc.pointwise(self.features, self.dtype, "conv_shortcut")(x)
    return nn.with_logical_constraint(x + h, vc.ACTIVATION_AXES)


class SpatialAttention(nn.Module):
  """Single-head self-attention over all H·W positions, with a residual: [B, H, W, C]."""
  groups: int
  dtype: Any

  @nn.compact
  def __call__(self, x: Array) -> Array:
    b, h, w, c = x.shape
    y = vc.group_norm(self.groups, "group_norm")(x).astype(self.dtype).reshape(b, h * w, c)
    q, k, v = (vc.pointwise(c, self.dtype, name)(y) for name in ("to_q", "to_k", "to_v"))
    y = vc.pointwise(c, self.dtype, "to_out_0")(vc.single_head_attention(q, k, v))
    return x + y.reshape(b, h, w, c)


class MidBlock(nn.Module):
  """resnet, (attention, resnet) at the lowest resolution: [B, h, w, C]."""
  groups: int
  add_attention: bool
  dtype: Any

  @nn.compact
  def __call__(self, x: Array) -> Array:
    c = x.shape[-1]
    x = ResnetBlock(c, self.groups, self.dtype, name="resnets_0")(x)
    if self.add_attention:
      x = SpatialAttention(self.groups, self.dtype, name="attentions_0")(x)
    return ResnetBlock(c, self.groups, self.dtype, name="resnets_1")(x)


class Downsample(nn.Module):
  """Pad right/bottom by one, then a stride-2 3×3 conv: [B, H, W, C] -> [B, H/2, W/2, C]."""
  dtype: Any

  @nn.compact
  def __call__(self, x: Array) -> Array:
    x = jnp.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)))
    return vc.conv(x.shape[-1], (3, 3), self.dtype, "conv", strides=2)(x)


class Upsample(nn.Module):
  """Nearest 2× upsampling then a 3×3 conv: [B, H, W, C] -> [B, 2H, 2W, C]."""
  dtype: Any

  @nn.compact
  def __call__(self, x: Array) -> Array:
    return vc.conv(x.shape[-1], (3, 3), self.dtype, "conv", padding=1)(vc.upsample_nearest2x(x))


class Level(nn.Module):
  """One resolution level: `num_layers` resnets, then optionally 2× resampling: [B, H, W, C]."""
  features: int
  num_layers: int
  groups: int
  resample: str | None  # "down", "up" or None
  dtype: Any

  @nn.compact
  def __call__(self, x: Array) -> Array:
    for j in range(self.num_layers):
      x = ResnetBlock(self.features, self.groups, self.dtype, name=f"resnets_{j}")(x)
    if self.resample == "down":
      x = Downsample(self.dtype, name="downsamplers_0")(x)
    elif self.resample == "up":
      x = Upsample(self.dtype, name="upsamplers_0")(x)
    return x


class Encoder(nn.Module):
  """Pixels [B, H, W, C_in] -> posterior moments [B, H/f, W/f, 2·latent] (before quant_conv)."""
  config: AutoencoderKLConfig

  @nn.compact
  def __call__(self, x: Array) -> Array:
    cfg = self.config
    g, dt = cfg.norm_num_groups, cfg.dtype
    x = vc.conv(cfg.block_out_channels[0], (3, 3), dt, "conv_in", padding=1)(x.astype(dt))
    last = len(cfg.block_out_channels) - 1
    for i, c in enumerate(cfg.block_out_channels):
      x = Level(c, cfg.layers_per_block, g, "down" if i < last else None, dt,
                name=f"down_blocks_{i}")(x)
    x = MidBlock(g, cfg.mid_block_add_attention, dt, name="mid_block")(x)
    x = nn.silu(vc.group_norm(g, "conv_norm_out")(x).astype(dt))
    return vc.conv(2 * cfg.latent_channels, (3, 3), dt, "conv_out", padding=1)(x)


class Decoder(nn.Module):
  """Latents [B, h, w, latent] -> pixels [B, h·f, w·f, C_out]."""
  config: AutoencoderKLConfig

  @nn.compact
  def __call__(self, z: Array) -> Array:
    cfg = self.config
    g, dt = cfg.norm_num_groups, cfg.dtype
    channels = cfg.block_out_channels[::-1]
    x = vc.conv(channels[0], (3, 3), dt, "conv_in", padding=1)(z.astype(dt))
    x = MidBlock(g, cfg.mid_block_add_attention, dt, name="mid_block")(x)
    last = len(channels) - 1
    for i, c in enumerate(channels):
      x = Level(c, cfg.layers_per_block + 1, g, "up" if i < last else None, dt,
                name=f"up_blocks_{i}")(x)
    x = nn.silu(vc.group_norm(g, "conv_norm_out")(x).astype(dt))
    return vc.conv(cfg.out_channels, (3, 3), dt, "conv_out", padding=1)(x)


class AutoencoderKL(nn.Module):
  """The KL autoencoder: `encode` images to a diagonal Gaussian posterior, `decode` latents."""
  config: AutoencoderKLConfig

  def setup(self):
    cfg = self.config
    self.encoder = Encoder(cfg)
    self.decoder = Decoder(cfg)
    if cfg.use_quant_conv:
      self.quant_conv = vc.pointwise(2 * cfg.latent_channels, cfg.dtype, "quant_conv")
    if cfg.use_post_quant_conv:
      self.post_quant_conv = vc.pointwise(cfg.latent_channels, cfg.dtype, "post_quant_conv")

  def encode(self, x: Array) -> tuple[Array, Array]:
    """x: [B, H, W, C_in] in [-1, 1] -> posterior (mean, logvar), each [B, H/f, W/f, C], f32."""
    _check_images(self.config, x)
    moments = self.encoder(x)
    if self.config.use_quant_conv:
      moments = self.quant_conv(moments)
    return vc.split_moments(moments)

  def decode(self, z: Array) -> Array:
    """z: [B, h, w, latent] (unnormalised) -> images [B, h·f, w·f, C_out], float32."""
    _check_latents(self.config, z)
    z = z.astype(self.config.dtype)
    if self.config.use_post_quant_conv:
      z = self.post_quant_conv(z)
    return self.decoder(z).astype(jnp.float32)

  def __call__(self, x: Array, key: Array | None = None) -> Array:
    """Reconstruction [B, H, W, C] of the posterior mean, or of a sample when `key` is given."""
    mean, logvar = self.encode(x)
    return self.decode(mean if key is None else vc.posterior_sample(key, mean, logvar))

  def normalize(self, z: Array) -> Array:
    """Posterior latents -> the diffusion model's unit-variance latents (LDM §4.3.2): [..., C]."""
    return normalize(self.config, z)

  def denormalize(self, z: Array) -> Array:
    """Inverse of `normalize`: diffusion latents -> decoder latents, [..., latent]."""
    return denormalize(self.config, z)


def _latent_stats(cfg: AutoencoderKLConfig) -> tuple[Any, Any]:
  """(shift, scale) with normalize(z) = (z - shift) · scale, per channel or scalar."""
  if cfg.latents_mean is not None and cfg.latents_std is not None:
    mean = np.asarray(cfg.latents_mean, np.float32)
    return mean, cfg.scaling_factor / np.asarray(cfg.latents_std, np.float32)
  return (cfg.shift_factor or 0.0), cfg.scaling_factor


def normalize(config: AutoencoderKLConfig, z: Array) -> Array:
  """(z - shift) · scaling_factor (per-channel mean/std when the config has them): [..., latent]."""
  shift, scale = _latent_stats(config)
  return (z - shift) * scale


def denormalize(config: AutoencoderKLConfig, z: Array) -> Array:
  """z / scaling_factor + shift, the inverse of `normalize`: [..., latent]."""
  shift, scale = _latent_stats(config)
  return z / scale + shift


def _check_images(cfg: AutoencoderKLConfig, x: Any) -> None:
  f = cfg.downscale_factor
  if (x.ndim != 4 or x.shape[-1] != cfg.in_channels or x.shape[1] % f or x.shape[2] % f
      or not x.shape[1]):
    raise ValueError(f"x has shape {tuple(x.shape)}; expected images [B, H, W, {cfg.in_channels}] "
                     f"with H and W positive multiples of {f}")


def _check_latents(cfg: AutoencoderKLConfig, z: Any) -> None:
  if z.ndim != 4 or z.shape[-1] != cfg.latent_channels:
    raise ValueError(f"z has shape {tuple(z.shape)}; expected latents "
                     f"[B, h, w, {cfg.latent_channels}]")


def _shapes(config: AutoencoderKLConfig) -> dict:
  f = config.downscale_factor
  return vc.param_shapes(AutoencoderKL(config), jnp.zeros((1, f, f, config.in_channels)))


def num_params(config: AutoencoderKLConfig) -> int:
  """Number of parameters of the model for `config` (computed without allocating them)."""
  return vc.count_params(_shapes(config))


def source_names(config: AutoencoderKLConfig) -> list[str]:
  """The diffusers state-dict names that `convert_params` reads."""
  return vc.source_names(_shapes(config))


def convert_params(config: AutoencoderKLConfig, read: Callable[[str], np.ndarray]) -> dict:
  """Flax params from a diffusers AutoencoderKL state dict, read tensor by tensor by name."""
  return vc.convert_tree(_shapes(config), read)
