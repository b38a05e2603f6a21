"""Conditioning embeddings: sinusoidal timesteps + MLP, class labels, caption projection."""

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.nn.linear import Linear


def timestep_embedding(t: jax.Array, dim: int, flip_sin_to_cos: bool = True,
                       downscale_freq_shift: float = 0.0, max_period: float = 10000.0) -> jax.Array:
  """Sinusoidal embedding of (fractional) timesteps (DDPM, Vaswani et al.): t: [N] -> [N, dim] f32.

  Frequencies are exp(-log(max_period) · i / (dim/2 - downscale_freq_shift)); DiT uses shift 1,
  PixArt-α and Wan shift 0. flip_sin_to_cos puts cos first.
  """
  half = dim // 2
  freqs = np.exp(-math.log(max_period) * np.arange(half) / (half - downscale_freq_shift))
  freqs = freqs.astype(np.float32)
  args = t.astype(jnp.float32)[:, None] * freqs[None, :]
  sin, cos = jnp.sin(args), jnp.cos(args)
  emb = jnp.concatenate([cos, sin] if flip_sin_to_cos else [sin, cos], axis=-1)
  if dim % 2:
    emb = jnp.pad(emb, ((0, 0), (0, 1)))
  return emb


class TimestepEmbedder(nn.Module):
  """Sinusoid of a scalar, then Linear-SiLU-Linear (DiT §3.2), in f32: t: [N] -> [N, features]."""

  features: int
  freq_dim: int = 256
  flip_sin_to_cos: bool = True
  downscale_freq_shift: float = 0.0

  @nn.compact
  def __call__(self, t: jax.Array) -> jax.Array:
    h = timestep_embedding(t, self.freq_dim, self.flip_sin_to_cos, self.downscale_freq_shift)
    init = nn.initializers.normal(0.02)
    h = Linear(self.features, (None, "embed"), kernel_init=init, name="linear_1")(h)
    return Linear(self.features, ("mlp", "embed"), kernel_init=init, name="linear_2")(nn.silu(h))


class PooledTextEmbed(nn.Module):
  """Linear-SiLU-Linear of a pooled text embedding, in f32 (SD3's pooled-CLIP conditioning, added
  to the timestep embedding): [N, D_text] -> [N, features]."""

  features: int

  @nn.compact
  def __call__(self, pooled: jax.Array) -> jax.Array:
    init = nn.initializers.normal(0.02)
    h = Linear(self.features, (None, "embed"), kernel_init=init, name="linear_1")(
        pooled.astype(jnp.float32))
    return Linear(self.features, ("mlp", "embed"), kernel_init=init, name="linear_2")(nn.silu(h))


class LabelEmbedder(nn.Module):
  """Class-label table with one extra row, the null class used for classifier-free guidance.

  y: [B] int in [0, num_classes] (num_classes = null) -> [B, features] f32.
  """

  num_classes: int
  features: int

  @nn.compact
  def __call__(self, y: jax.Array) -> jax.Array:
    table = self.param(
        "table", nn.with_logical_partitioning(nn.initializers.normal(0.02), ("vocab", "embed")),
        (self.num_classes + 1, self.features), jnp.float32)
    return jnp.take(table, y, axis=0)


class CaptionProjection(nn.Module):
  """Text-token projection Linear-GELU(tanh)-Linear (PixArt-α, Wan): [B, S, D_text] -> [B, S, D]."""

  features: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, context: jax.Array) -> jax.Array:
    h = Linear(self.features, ("embed", "mlp"), dtype=self.dtype, name="linear_1")(context)
    h = nn.gelu(h, approximate=True)
    return Linear(self.features, ("mlp", "embed"), dtype=self.dtype, name="linear_2")(h)
