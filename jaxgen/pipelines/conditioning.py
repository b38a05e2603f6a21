"""Video tasks as masks over latent frames (Open-Sora): given frames are conditions.

A frame mask m: [B, t] marks latent frames given clean (1) or to generate (0). The
transformer sees them as extra input channels, concat(x_t, m * z_clean, m), as Wan's
image-to-video model does, so one network does text-to-video (m = 0), image-to-video
(first frame), extension (first frames), interpolation (first and last) and more.
"""

import jax
import jax.numpy as jnp

TASKS = ("t2v", "i2v", "extend", "interpolate", "loop")


def condition_channels(z_clean: jax.Array, frame_mask: jax.Array) -> jax.Array:
  """z_clean: [B, t, h, w, C], frame_mask: [B, t] -> [B, t, h, w, C + 1] extra input channels."""
  m = jnp.broadcast_to(frame_mask[:, :, None, None, None].astype(z_clean.dtype),
                       z_clean.shape[:-1] + (1,))
  return jnp.concatenate([z_clean * m, m], axis=-1)


def with_conditions(x: jax.Array, channels: jax.Array) -> jax.Array:
  """The transformer input: noisy latents [B, t, h, w, C] and condition channels concatenated."""
  return jnp.concatenate([x, channels.astype(x.dtype)], axis=-1)


def paste(x: jax.Array, z_clean: jax.Array, frame_mask: jax.Array) -> jax.Array:
  """Given frames replaced by their clean latents: [B, t, h, w, C]."""
  m = frame_mask[:, :, None, None, None].astype(x.dtype)
  return m * z_clean + (1.0 - m) * x


def task_mask(task: str, num_latent_frames: int, num_given: int = 1) -> jax.Array:
  """[t] frame mask of a named task: the first / last `num_given` latent frames are given.

  loop conditions the last frame on the first frame's content (the pipeline copies it).
  """
  if task not in TASKS:
    raise ValueError(f"task={task!r} is not supported; expected one of {TASKS}")
  if not 0 < num_given < num_latent_frames:
    raise ValueError(f"num_given={num_given} is not supported; expected 1 <= num_given < "
                     f"{num_latent_frames} latent frames")
  idx = jnp.arange(num_latent_frames)
  if task == "t2v":
    return jnp.zeros(num_latent_frames)
  if task in ("i2v", "extend"):
    return (idx < num_given).astype(jnp.float32)
  if task == "interpolate":
    return ((idx < num_given) | (idx >= num_latent_frames - num_given)).astype(jnp.float32)
  return ((idx == 0) | (idx == num_latent_frames - 1)).astype(jnp.float32)  # loop
