"""Fixed sin-cos position embeddings (Vaswani et al. 2017), 1D, 2D (DiT, PixArt-α) and 3D (Latte).

Built in numpy at trace time: shapes are static, the tables become constants of the program.
"""

import numpy as np


def sincos_1d(dim: int, pos: np.ndarray, theta: float = 10000.0) -> np.ndarray:
  """pos: [M] -> [M, dim] float64, [sin | cos] of pos · theta^(-2i/dim)."""
  if dim % 2:
    raise ValueError(f"dim={dim} must be even")
  omega = 1.0 / theta**(np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
  out = np.outer(np.asarray(pos, np.float64).reshape(-1), omega)
  return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def sincos_2d(dim: int, height: int, width: int, base_size: int | None = None,
              interpolation_scale: float = 1.0, theta: float = 10000.0) -> np.ndarray:
  """[height·width, dim] f32 for row-major tokens; first half encodes the column, second the row.

  Coordinates are rescaled to a base_size grid then divided by interpolation_scale (PixArt-α's
  resolution-aware positions); base_size None keeps integer coordinates. The column-first half order
  is the one the DiT/PixArt checkpoints were trained with.
  """
  def axis(n):
    scale = 1.0 if base_size is None else n / base_size
    return np.arange(n, dtype=np.float32) / np.float32(scale) / np.float32(interpolation_scale)

  rows, cols = np.meshgrid(axis(height), axis(width), indexing="ij")
  emb = np.concatenate([sincos_1d(dim // 2, cols, theta), sincos_1d(dim // 2, rows, theta)], axis=1)
  return emb.astype(np.float32)


def sincos_3d(dim: int, frames: int, height: int, width: int,
              spatial_interpolation_scale: float = 1.0,
              temporal_interpolation_scale: float = 1.0, theta: float = 10000.0) -> np.ndarray:
  """[frames, height·width, dim] f32: a quarter of dim encodes the frame, the rest (row, column)."""
  if dim % 4:
    raise ValueError(f"dim={dim} must be divisible by 4")
  spatial = sincos_2d(3 * dim // 4, height, width, interpolation_scale=spatial_interpolation_scale,
                      theta=theta)
  t = np.arange(frames, dtype=np.float32) / np.float32(temporal_interpolation_scale)
  temporal = sincos_1d(dim // 4, t, theta).astype(np.float32)
  spatial = np.broadcast_to(spatial[None], (frames,) + spatial.shape)
  temporal = np.broadcast_to(temporal[:, None], (frames, height * width, dim // 4))
  return np.concatenate([temporal, spatial], axis=-1)
