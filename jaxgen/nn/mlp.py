"""The transformer feed-forward block."""

from collections.abc import Callable
import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.nn.axes import HIDDEN, constrain
from jaxgen.nn.linear import Linear

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "gelu_tanh": functools.partial(jax.nn.gelu, approximate=True),
    "gelu": functools.partial(jax.nn.gelu, approximate=False),
    "silu": jax.nn.silu,
}


class Mlp(nn.Module):
  """Linear-activation-Linear: x: [B, L, D] -> [B, L, D] with hidden width `hidden`."""

  hidden: int
  activation: str = "gelu_tanh"  # One of ACTIVATIONS.
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if self.activation not in ACTIVATIONS:
      raise ValueError(f"activation={self.activation!r}; expected one of {sorted(ACTIVATIONS)}")
    h = Linear(self.hidden, ("embed", "mlp"), dtype=self.dtype, name="up")(x)
    h = constrain(ACTIVATIONS[self.activation](h), HIDDEN)
    return Linear(x.shape[-1], ("mlp", "embed"), dtype=self.dtype, name="down")(h)
