"""Open-Sora frame masks for training (Zheng et al. 2024, Open-Sora §3.3): random subsets of latent
frames are given clean as conditions, so that one model learns text-to-video, image-to-video,
extension and interpolation; the loss counts only the frames to generate.

A mask is float32 [B, t]: 1 = given (a condition), 0 = generated. The model sees it through
`jaxgen.pipelines.conditioning.condition_channels`.
"""

from collections.abc import Mapping

import jax
import jax.numpy as jnp

# none: text-to-video; image_head: image-to-video; image_tail: the last frame given;
# head_tail: the first and last k frames (interpolation, looping); extend_head: the first k
# frames (extension); random: each frame independently.
MASK_TYPES = ("none", "image_head", "image_tail", "head_tail", "extend_head", "random")
RANDOM_FRAME_RATE = 0.3  # chance that a frame is given under "random"


def check_probabilities(probabilities: Mapping[str, float]) -> None:
  """Raises ValueError unless the keys are MASK_TYPES and the values non-negative with a positive sum."""
  if set(probabilities) != set(MASK_TYPES):
    raise ValueError(f"mask probabilities: expected the keys {MASK_TYPES}, got "
                     f"{tuple(probabilities)}")
  values = [float(probabilities[k]) for k in MASK_TYPES]
  if min(values) < 0 or sum(values) <= 0:
    raise ValueError(f"mask probabilities: expected non-negative values with a positive sum, got "
                     f"{dict(probabilities)}")


def frame_masks(key: jax.Array, batch_size: int, num_frames: int,
                probabilities: Mapping[str, float]) -> jax.Array:
  """Random masks float32 [B, t], a type per example drawn with `probabilities` (by MASK_TYPES
  name, normalised); at least one frame is always left to generate."""
  check_probabilities(probabilities)
  if num_frames < 2:
    return jnp.zeros((batch_size, num_frames), jnp.float32)
  k_type, k_len, k_rand = jax.random.split(key, 3)
  p = jnp.asarray([float(probabilities[k]) for k in MASK_TYPES], jnp.float32)
  kind = jax.random.categorical(k_type, jnp.log(p), shape=(batch_size,))
  idx = jnp.arange(num_frames)[None]
  # k given frames: at most half the frames for extend_head, a quarter at each end for head_tail.
  u = jax.random.uniform(k_len, (batch_size, 1))
  k_extend = 1 + jnp.floor(u * (num_frames // 2)).astype(jnp.int32)
  k_ends = 1 + jnp.floor(u * max(num_frames // 4, 1)).astype(jnp.int32)
  masks = jnp.stack([
      jnp.zeros((batch_size, num_frames), bool),
      jnp.broadcast_to(idx == 0, (batch_size, num_frames)),
      jnp.broadcast_to(idx == num_frames - 1, (batch_size, num_frames)),
      (idx < k_ends) | (idx >= num_frames - k_ends),
      idx < k_extend,
      jax.random.bernoulli(k_rand, RANDOM_FRAME_RATE, (batch_size, num_frames)),
  ])  # [types, B, t]
  mask = jnp.take_along_axis(masks, kind[None, :, None], axis=0)[0]
  all_given = jnp.all(mask, axis=1, keepdims=True)
  return jnp.where(all_given, False, mask).astype(jnp.float32)
