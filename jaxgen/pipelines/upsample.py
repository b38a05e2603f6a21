"""Naive resampling between cascade stages: bilinear in space, frame repetition in time.

Imagen Video (Ho et al. 2022, §2.1) conditions each super-resolution stage on the stage below,
upsampled this way and concatenated channel-wise with the noisy input. The same functions are the
naive baseline a trained stage must beat. Downsampling (area average, frame striding) makes a
lower-stage input from ground truth for training.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np


@functools.cache
def bilinear_matrix(src: int, dst: int) -> np.ndarray:
  """Bilinear weights [dst, src], half-pixel centres, edges clamped (torch align_corners=False)."""
  pos = np.clip((np.arange(dst) + 0.5) * src / dst - 0.5, 0, src - 1)
  lo = np.floor(pos).astype(int)
  hi = np.minimum(lo + 1, src - 1)
  w = np.zeros((dst, src), np.float64)
  np.add.at(w, (np.arange(dst), lo), 1 - (pos - lo))
  np.add.at(w, (np.arange(dst), hi), pos - lo)
  w.flags.writeable = False  # cached and shared
  return w


def _check(name: str, factor: int) -> None:
  if not isinstance(factor, (int, np.integer)) or factor < 1:
    raise ValueError(f"{name}={factor!r}; expected an integer >= 1")


def bilinear(x: jax.Array, factor: int) -> jax.Array:
  """Spatial ×factor bilinear upsampling: x: [B, T, H, W, C] -> [B, T, H·f, W·f, C]."""
  _check("factor", factor)
  if factor == 1:
    return x
  h, w = x.shape[2:4]
  mh = jnp.asarray(bilinear_matrix(h, h * factor), jnp.float32)
  mw = jnp.asarray(bilinear_matrix(w, w * factor), jnp.float32)
  y = jnp.einsum("Hh,bthwc->btHwc", mh, x.astype(jnp.float32), precision="highest")
  return jnp.einsum("Ww,bthwc->bthWc", mw, y, precision="highest").astype(x.dtype)


def repeat_frames(x: jax.Array, factor: int) -> jax.Array:
  """Temporal ×factor by frame repetition: x: [B, T, H, W, C] -> [B, T·f, H, W, C]."""
  _check("factor", factor)
  return x if factor == 1 else jnp.repeat(x, factor, axis=1)


def upsample(x: jax.Array, temporal_factor: int = 1, spatial_factor: int = 1) -> jax.Array:
  """Both at once: x: [B, T, H, W, C] -> [B, T·tf, H·sf, W·sf, C]."""
  return bilinear(repeat_frames(x, temporal_factor), spatial_factor)


def downsample(x: jax.Array, temporal_factor: int = 1, spatial_factor: int = 1) -> jax.Array:
  """Every tf-th frame, then sf×sf area averages: x: [B, T, H, W, C] -> [B, T/tf, H/sf, W/sf, C].

  T, H and W must be multiples of their factors. Frame striding is what a lower frame rate
  records; the area average is what a sensor with sf× larger pixels records.
  """
  _check("temporal_factor", temporal_factor)
  _check("spatial_factor", spatial_factor)
  b, t, h, w, c = x.shape
  if t % temporal_factor or h % spatial_factor or w % spatial_factor:
    raise ValueError(f"x has frames, height, width {[t, h, w]}; expected multiples of "
                     f"[{temporal_factor}, {spatial_factor}, {spatial_factor}]")
  x = x[:, ::temporal_factor]
  s = spatial_factor
  x = x.reshape(b, t // temporal_factor, h // s, s, w // s, s, c)
  return jnp.mean(x.astype(jnp.float32), axis=(3, 5)).astype(x.dtype)
