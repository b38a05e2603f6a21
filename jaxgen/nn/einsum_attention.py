"""Attention as head-major einsums with a plain softmax: the fast, low-memory form on XLA:CPU.

jax.nn.dot_product_attention's portable path materialises the [B, N, T, S] logits and copies them
between layouts; written head-major with a plain softmax, XLA:CPU fuses q·kᵀ, softmax and ·v into one
kernel that never holds the logits (BENCHMARKS.md: ~2x faster; 100 MB instead of 8.6 GB of scratch
at 16k tokens). Other backends use their own kernels (cuDNN, splash).
"""

import jax
import jax.numpy as jnp
import numpy as np


def einsum_attention(q: jax.Array, k: jax.Array, v: jax.Array,
                     mask: jax.Array | None = None) -> jax.Array:
  """softmax(q·kᵀ/√H)·v: q: [B, T, N, H], k, v: [B, S, N, H] -> [B, T, N, H].

  Logits and softmax in float32, probabilities in v's dtype, as jax.nn.dot_product_attention.
  mask: [B, S] bool, True where a key may be attended to, or None.
  """
  h = q.shape[-1]
  q, k, v = (x.transpose(0, 2, 1, 3) for x in (q * np.asarray(h**-0.5, q.dtype), k, v))
  logits = jnp.einsum("bnth,bnsh->bnts", q, k, preferred_element_type=jnp.float32)
  if mask is not None:
    # A large finite value, as jax's path uses: a fully masked row averages v rather than NaN.
    logits = jnp.where(mask[:, None, None, :], logits, jnp.finfo(jnp.float32).min)
  probs = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
  out = jnp.einsum("bnts,bnsh->bnth", probs, v, preferred_element_type=jnp.float32)
  return out.astype(q.dtype).transpose(0, 2, 1, 3)
