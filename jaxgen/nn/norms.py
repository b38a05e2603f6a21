"""LayerNorm and RMSNorm, computed in float32 whatever the compute dtype."""

import flax.linen as nn
import jax
import jax.numpy as jnp


def layer_norm(x: jax.Array, eps: float) -> jax.Array:
  """LayerNorm without affine over the last dim, in float32: x: [..., D] -> [..., D] f32."""
  x = x.astype(jnp.float32)
  mean = jnp.mean(x, axis=-1, keepdims=True)
  var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
  return (x - mean) * jax.lax.rsqrt(var + eps)


class LayerNorm(nn.Module):
  """LayerNorm over the last dim with optional learned scale/bias: x: [..., D] -> [..., D] f32."""

  eps: float = 1e-6
  use_scale: bool = True
  use_bias: bool = True

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    y = layer_norm(x, self.eps)
    features = (x.shape[-1],)
    if self.use_scale:
      init = nn.with_logical_partitioning(nn.initializers.ones_init(), ("norm",))
      y = y * self.param("scale", init, features, jnp.float32)
    if self.use_bias:
      init = nn.with_logical_partitioning(nn.initializers.zeros_init(), ("norm",))
      y = y + self.param("bias", init, features, jnp.float32)
    return y


class RMSNorm(nn.Module):
  """RMSNorm over the last num_axes dims with a learned scale: x: [..., *S] -> [..., *S] f32.

  num_axes=2 on q: [B, L, N, H] normalises across all heads at once (Wan 2.1's
  "rms_norm_across_heads"); num_axes=1 normalises each head separately.
  """

  eps: float = 1e-6
  num_axes: int = 1
  axes: tuple[str | None, ...] = ("norm",)  # Logical names of the scale's dims.

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    reduce = tuple(range(x.ndim - self.num_axes, x.ndim))
    x = x.astype(jnp.float32)
    y = x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=reduce, keepdims=True) + self.eps)
    init = nn.with_logical_partitioning(nn.initializers.ones_init(), self.axes)
    scale = self.param("scale", init, x.shape[x.ndim - self.num_axes:], jnp.float32)
    return y * scale
