"""Patch embedding (ViT; DiT's "patchify") and its inverse, for images and videos alike."""

from collections.abc import Sequence
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.nn.linear import Linear


def patchify(x: jax.Array, patch: Sequence[int]) -> jax.Array:
  """x: [B, *S, C] -> [B, prod(S/p), prod(p)·C], each patch's features ordered (*p, C)."""
  n = len(patch)
  b, spatial, c = x.shape[0], x.shape[1:-1], x.shape[-1]
  grid = tuple(s // p for s, p in zip(spatial, patch))
  x = x.reshape((b,) + sum(((g, p) for g, p in zip(grid, patch)), ()) + (c,))
  x = x.transpose((0,) + tuple(range(1, 2 * n, 2)) + tuple(range(2, 2 * n + 1, 2)) + (2 * n + 1,))
  return x.reshape(b, math.prod(grid), math.prod(patch) * c)


def unpatchify(x: jax.Array, grid: Sequence[int], patch: Sequence[int]) -> jax.Array:
  """x: [B, prod(grid), prod(p)·C] (features ordered (*p, C)) -> [B, *(grid·p), C]."""
  n = len(patch)
  b, c = x.shape[0], x.shape[-1] // math.prod(patch)
  x = x.reshape((b,) + tuple(grid) + tuple(patch) + (c,))
  x = x.transpose((0,) + sum(((1 + i, 1 + n + i) for i in range(n)), ()) + (2 * n + 1,))
  return x.reshape((b,) + tuple(g * p for g, p in zip(grid, patch)) + (c,))


class PatchEmbed(nn.Module):
  """Non-overlapping patches -> tokens, a strided conv as one matmul: [B, *S, C] -> [B, L, D]."""

  patch: tuple[int, ...]
  features: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    return Linear(self.features, (None, "embed"), dtype=self.dtype, name="proj")(
        patchify(x, self.patch))
