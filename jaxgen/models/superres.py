"""Imagen Video's super-resolution stages (Ho et al. 2022, §2.1-2.5): TSR (more frames) and SSR
(more pixels), each a diffusion model conditioned on the stage below.

The network is the Wan 2.1 video DiT (jaxgen.models.wan) with in_channels = 2·C (+1 for TSR): the
noisy video concatenated channel-wise with the lower stage's output, upsampled (frame repetition
in time, bilinear in space, jaxgen.pipelines.upsample) and noise-augmented
(jaxgen.diffusion.augment). A TSR stage also gets a channel that is 1 on the frames the lower
stage gave and 0 on their repeats: the frames it must keep and the ones it must draw anew look
alike after repetition and augmentation, and relative positions (RoPE) do not say which is which.
The augmentation level a enters as a second sinusoidal embedding added to the timestep embedding,
so it reaches every block's adaLN modulation. `SuperResDiT` wraps Wan's two halves
(`wan.embed_patches`, `wan.denoise_tokens`) around that sum; its params are Wan's plus `aug_embed`.

The diffusion runs over the residual of the high-resolution video over that naive upsampling
(as SRDiff, Li et al. 2022, does for images): an untrained stage (zero output layer, DiT practice)
then samples the naive baseline itself, and training only has to add what upsampling misses. The
lower stage's frames that TSR repeats are exact already, so their residual is zero.

Pixel space, not latent space: Moving Digits is 32×32, so a pixel-space SSR/TSR stage is cheap
(2×2 or 4×4 patches give the same token counts a latent model has) and needs no second VAE at the
higher resolution or frame rate; it also sidesteps the causal VAE's 4n+1 frame constraint, so
frame repetition is exact. A latent stage would only pay off at resolutions where pixels are
costly, as in Wan's own 480p/720p models. Stages predict v (Salimans & Ho 2022) by default, as in
Imagen Video §2.4.
"""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.models import wan
from jaxgen.models.dit_common import check_shape
from jaxgen.models.wan import WanConfig
from jaxgen.nn.embeddings import TimestepEmbedder

TEMPORAL_FACTORS = (1, 2)  # TSR doubles the frame count
SPATIAL_FACTORS = (1, 2, 4)  # SSR raises height and width ×2 or ×4


def input_channels(temporal_factor: int, channels: int = 3) -> int:
  """The stage network's input channels: noisy video, upsampled input, and for TSR given frames."""
  return 2 * channels + (temporal_factor > 1)


def given_frames(frames: int, temporal_factor: int) -> jax.Array:
  """[frames] float: 1 on the lower stage's frames (every temporal_factor-th), 0 on the repeats."""
  return (jnp.arange(frames) % temporal_factor == 0).astype(jnp.float32)


@dataclasses.dataclass(frozen=True)
class SuperResConfig:
  """A TSR or SSR stage network: a Wan DiT over [noisy video, upsampled lower stage]."""

  dit: WanConfig  # in_channels = input_channels(temporal_factor), out_channels = channels
  temporal_factor: int = 1  # 2: TSR
  spatial_factor: int = 1  # 2 or 4: SSR
  channels: int = 3  # RGB pixels
  aug_time_scale: float = 1000.0  # level a in [0, 1] is embedded as a·scale, like timesteps

  def __post_init__(self):
    if self.temporal_factor not in TEMPORAL_FACTORS:
      raise ValueError(f"temporal_factor={self.temporal_factor!r}; expected one of "
                       f"{TEMPORAL_FACTORS} (TSR doubles the frame count)")
    if self.spatial_factor not in SPATIAL_FACTORS:
      raise ValueError(f"spatial_factor={self.spatial_factor!r}; expected one of "
                       f"{SPATIAL_FACTORS} (SSR raises the size ×2 or ×4)")
    if (self.temporal_factor, self.spatial_factor) == (1, 1):
      raise ValueError("temporal_factor=1 and spatial_factor=1: a stage must raise the frame "
                       "count (TSR) or the size (SSR)")
    expected = input_channels(self.temporal_factor, self.channels)
    if self.dit.in_channels != expected or self.dit.out_channels != self.channels:
      raise ValueError(f"dit has in/out channels {self.dit.in_channels}/{self.dit.out_channels}; "
                       f"expected {expected}/{self.channels} (noisy + upsampled input"
                       f"{' + given-frame channel' if self.temporal_factor > 1 else ''})")

  @property
  def kind(self) -> str:
    """'tsr', 'ssr', or 'tsr+ssr' when the stage raises both."""
    return "+".join(k for k, f in (("tsr", self.temporal_factor), ("ssr", self.spatial_factor))
                    if f > 1)

  def output_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int]:
    """(T, H, W) of the stage's output for an input of (frames, height, width)."""
    return (frames * self.temporal_factor, height * self.spatial_factor,
            width * self.spatial_factor)

  def check_input(self, name: str, frames: int, height: int, width: int) -> tuple[int, int, int]:
    """The output (T, H, W), or a ValueError when the input does not fit the stage's factors."""
    out = self.output_shape(frames, height, width)
    patch = self.dit.patch_size
    if min(frames, height, width) < 1 or any(o % p for o, p in zip(out, patch)):
      raise ValueError(
          f"{name} ({self.kind} ×{self.temporal_factor} frames, ×{self.spatial_factor} size) gets "
          f"frames, height, width {[frames, height, width]} and would make {list(out)}, which is "
          f"not a positive multiple of its patch size {list(patch)}")
    grid = max(o // p for o, p in zip(out, patch))
    if grid > self.dit.rope_max_seq_len:
      raise ValueError(f"{name} would make {list(out)}: a token grid side of {grid} exceeds "
                       f"rope_max_seq_len={self.dit.rope_max_seq_len}")
    return out


class SuperResDiT(nn.Module):
  """(x_t, t [B], low, aug_level [B], context [B, S, text_dim], context_mask [B, S] | None)
  -> prediction [B, T, H, W, C].

  x_t: [B, T, H, W, C] the noisy high-resolution video; low: [B, T, H, W, C] the lower stage
  upsampled to the same shape and noise-augmented to aug_level in [0, 1].
  """

  config: SuperResConfig

  @nn.compact
  def __call__(self, x: jax.Array, t: jax.Array, low: jax.Array, aug_level: jax.Array,
               context: jax.Array, context_mask: jax.Array | None = None) -> jax.Array:
    cfg = self.config.dit
    c = self.config.channels
    check_shape("x", x, (None, None, None, None, c), "[B, T, H, W, channels]")
    b = x.shape[0]
    check_shape("low", low, x.shape, "the upsampled lower stage, shaped like x")
    check_shape("t", t, (b,), "[B] timesteps")
    check_shape("aug_level", aug_level, (b,), "[B] augmentation levels in [0, 1]")
    inputs = [x, low.astype(x.dtype)]
    tf = self.config.temporal_factor
    if tf > 1:
      given = given_frames(x.shape[1], tf).astype(x.dtype)[None, :, None, None, None]
      inputs.append(jnp.broadcast_to(given, x.shape[:-1] + (1,)))
    h, grid, rope = wan.embed_patches(cfg, jnp.concatenate(inputs, -1))
    temb = TimestepEmbedder(cfg.hidden_size, cfg.freq_dim, True, 0.0, name="time_embed")(t)
    aug = aug_level.astype(jnp.float32) * self.config.aug_time_scale
    temb = temb + TimestepEmbedder(cfg.hidden_size, cfg.freq_dim, True, 0.0, name="aug_embed")(aug)
    return wan.denoise_tokens(cfg, h, temb, context, context_mask, grid, rope)
