"""Logical axis names of the main activations, and the constraint that applies them.

A sharding config maps these names to mesh axes (jaxgen/parallel); model code only names dims.
"""

from collections.abc import Sequence

import flax.linen as nn
import jax

TOKENS = ("batch", "length", "embed")  # x: [B, L, D]
CONTEXT = ("batch", "kv_length", "embed")  # context: [B, S, D]
HEADS = ("batch", "length", "heads", "kv")  # q: [B, L, N, H]
KV_HEADS = ("batch", "kv_length", "heads", "kv")  # k, v: [B, S, N, H]
HIDDEN = ("batch", "length", "mlp")  # MLP hidden: [B, L, F]


def constrain(x: jax.Array, names: Sequence[str | None]) -> jax.Array:
  """Names x's dims for sharding (a no-op outside a mesh with axis rules); len(names) == x.ndim."""
  return nn.with_logical_constraint(x, tuple(names))
