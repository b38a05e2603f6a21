"""Rotary position embeddings (Su et al. 2021), with Wan 2.1's 3D split of the head dim: t/h/w."""

import jax
import jax.numpy as jnp
import numpy as np


def rope_angles(dim: int, pos: np.ndarray, theta: float = 10000.0) -> np.ndarray:
  """pos: [M] -> [M, dim/2] float64 angles pos · theta^(-2i/dim)."""
  if dim % 2:
    raise ValueError(f"rotary dim={dim} must be even")
  inv_freq = 1.0 / theta**(np.arange(0, dim, 2, dtype=np.float64) / dim)
  return np.outer(np.asarray(pos, np.float64), inv_freq)


def rope_3d_dims(head_dim: int) -> tuple[int, int, int]:
  """Wan 2.1's split of the head dim: h and w get 2·⌊head_dim/6⌋ each, t the rest."""
  hw = 2 * (head_dim // 6)
  return head_dim - 2 * hw, hw, hw


def rope_3d(grid: tuple[int, int, int], head_dim: int, theta: float = 10000.0,
            offset: tuple[int, int, int] = (0, 0, 0)) -> tuple[np.ndarray, np.ndarray]:
  """cos, sin: [T·H·W, head_dim/2] float32 for the row-major (t, h, w) token grid.

  Each of t, h, w rotates its own slice of the head dim with its own coordinate, so q·k depends on
  the relative offset along each axis. offset shifts the coordinates (e.g. frames of a window).
  """
  dims = rope_3d_dims(head_dim)
  angles = []
  for axis, (n, d, o) in enumerate(zip(grid, dims, offset)):
    a = rope_angles(d, np.arange(o, o + n), theta)
    shape = [1, 1, 1, d // 2]
    shape[axis] = n
    angles.append(np.broadcast_to(a.reshape(shape), tuple(grid) + (d // 2,)))
  angles = np.concatenate(angles, axis=-1).reshape(-1, head_dim // 2)
  return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


def apply_rope(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
  """Rotates the pairs (x[2i], x[2i+1]) of x: [B, L, N, H] by cos, sin: [L, H/2]; f32 inside."""
  dtype = x.dtype
  x = x.astype(jnp.float32).reshape(x.shape[:-1] + (x.shape[-1] // 2, 2))
  x1, x2 = x[..., 0], x[..., 1]
  cos, sin = cos[:, None, :], sin[:, None, :]
  out = jnp.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)
  return out.reshape(out.shape[:-2] + (-1,)).astype(dtype)
