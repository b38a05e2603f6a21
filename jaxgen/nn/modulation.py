"""Adaptive LayerNorm modulation: adaLN-Zero (DiT), adaLN-single (PixArt-α, Wan 2.1).

All of it computes in float32; modulation vectors come out as [B, n, D] (n chunks: shift, scale,
gate, ...).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.nn.linear import Linear


def modulate(x: jax.Array, shift: jax.Array, scale: jax.Array) -> jax.Array:
  """x · (1 + scale) + shift in float32; x: [B, L, D], shift/scale: [B, 1, D]."""
  return x.astype(jnp.float32) * (1.0 + scale) + shift


def chunks(mod: jax.Array) -> tuple[jax.Array, ...]:
  """mod: [B, n, D] -> n arrays [B, 1, D]."""
  return tuple(mod[:, i:i + 1] for i in range(mod.shape[1]))


class AdaLNZero(nn.Module):
  """Per-block SiLU-Linear of the conditioning, zero-initialised: every block starts as identity.

  Peebles & Xie 2023 (DiT) §3.2 "adaLN-Zero": c: [B, D_c] -> [B, num_chunks, features] f32.
  """

  num_chunks: int
  features: int

  @nn.compact
  def __call__(self, c: jax.Array) -> jax.Array:
    zeros = nn.initializers.zeros_init()
    mod = Linear(self.num_chunks * self.features, ("embed", "mlp"), kernel_init=zeros,
                 name="linear")(nn.silu(c.astype(jnp.float32)))
    return mod.reshape(c.shape[0], self.num_chunks, self.features)


class AdaLNSingle(nn.Module):
  """One SiLU-Linear of the time embedding shared by all blocks (PixArt-α §2.3 "adaLN-single").

  Wan 2.1's `time_projection` is the same layer. c: [B, D] -> [B, num_chunks, features] f32.
  """

  num_chunks: int
  features: int

  @nn.compact
  def __call__(self, c: jax.Array) -> jax.Array:
    mod = Linear(self.num_chunks * self.features, ("embed", "mlp"),
                 kernel_init=nn.initializers.normal(0.02),
                 name="linear")(nn.silu(c.astype(jnp.float32)))
    return mod.reshape(c.shape[0], self.num_chunks, self.features)


class ScaleShiftTable(nn.Module):
  """A block's own learned table E(i): [num_chunks, D] added to the shared modulation (PixArt-α).

  Wan 2.1 calls it the per-block learned bias of the shared time projection.
  mod: [B, num_chunks or 1, D] -> [B, num_chunks, D] f32.
  """

  num_chunks: int

  @nn.compact
  def __call__(self, mod: jax.Array) -> jax.Array:
    d = mod.shape[-1]
    init = lambda key, shape, dtype: jax.random.normal(key, shape, dtype) / d**0.5
    table = self.param("table", nn.with_logical_partitioning(init, (None, "embed")),
                       (self.num_chunks, d), jnp.float32)
    return table + mod.astype(jnp.float32)
