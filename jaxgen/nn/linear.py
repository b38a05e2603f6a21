"""Linear layers with float32 parameters that carry logical axis names."""

from collections.abc import Callable, Sequence
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Initializer = Callable[..., jax.Array]


def _flat_init(init: Initializer, in_dims: int) -> Initializer:
  """Runs a 2D initializer on the flattened [prod(in), prod(out)] kernel: right fan-in/out."""

  def wrapped(key, shape, dtype=jnp.float32):
    flat = (math.prod(shape[:in_dims]), math.prod(shape[in_dims:]))
    return init(key, flat, dtype).reshape(shape)

  return wrapped


class Linear(nn.Module):
  """y: [..., *features] = x: [..., *in] · kernel: [*in, *features] + bias (x's last in_dims)."""

  features: int | Sequence[int]
  axes: Sequence[str | None]  # Logical names of the kernel dims: inputs, then outputs.
  in_dims: int = 1  # How many trailing dims of x are contracted.
  use_bias: bool = True
  dtype: Any = jnp.float32  # Compute dtype; params stay float32.
  kernel_init: Initializer = nn.initializers.xavier_uniform()
  bias_init: Initializer = nn.initializers.zeros_init()

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    features = (self.features,) if isinstance(self.features, int) else tuple(self.features)
    axes = tuple(self.axes)
    if len(axes) != self.in_dims + len(features):
      raise ValueError(
          f"axes={axes} must name {self.in_dims} input and {len(features)} output dims")
    in_shape = x.shape[x.ndim - self.in_dims:]
    kernel = self.param(
        "kernel", nn.with_logical_partitioning(_flat_init(self.kernel_init, self.in_dims), axes),
        in_shape + features, jnp.float32)
    contract = (tuple(range(x.ndim - self.in_dims, x.ndim)), tuple(range(self.in_dims)))
    y = jax.lax.dot_general(x.astype(self.dtype), kernel.astype(self.dtype), (contract, ((), ())))
    if self.use_bias:
      bias = self.param(
          "bias", nn.with_logical_partitioning(self.bias_init, axes[self.in_dims:]), features,
          jnp.float32)
      y = y + bias.astype(self.dtype)
    return y
