"""Exponential moving average of the weights (Polyak averaging), as diffusion models are sampled."""

import jax
import jax.numpy as jnp


def ema_decay(step: jax.Array, decay: float, warmup: bool = True) -> jax.Array:
  """Decay at `step`: min(decay, (1 + step) / (10 + step)) with warmup, so early EMA follows the
  fast-changing weights instead of remembering the random init; else `decay`."""
  if not warmup:
    return jnp.asarray(decay, jnp.float32)
  step = jnp.asarray(step, jnp.float32)
  return jnp.minimum(decay, (1.0 + step) / (10.0 + step))


def ema_update(ema, params, decay: jax.Array):
  """ema ← decay·ema + (1 − decay)·params, leaf by leaf (float32 pytrees of the same structure)."""
  return jax.tree.map(lambda e, p: e + (1.0 - decay) * (p.astype(e.dtype) - e), ema, params)
