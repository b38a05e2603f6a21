"""Pixel values: uint8 videos and images to the models' [-1, 1] range and back."""

import jax
import jax.numpy as jnp


def to_unit_range(video: jax.Array) -> jax.Array:
  """uint8 [..., 3] -> float32 in [-1, 1]."""
  return jnp.asarray(video).astype(jnp.float32) / 127.5 - 1.0


def to_uint8(video: jax.Array) -> jax.Array:
  """float in [-1, 1] (clipped) -> uint8, rounded."""
  return jnp.round((jnp.clip(video, -1.0, 1.0) + 1.0) * 127.5).astype(jnp.uint8)
