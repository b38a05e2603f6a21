"""Noise-conditioning augmentation (Ho et al. 2021, "Cascaded Diffusion Models", §3.2; Imagen
Video §2.5): a super-resolution stage sees the lower stage's output noised to a level a, and a as a
conditioning signal, so at sampling it can be told how much to distrust its input.

The level a in [0, 1] is a time of the stage's own schedule (0 = clean, 1 = pure noise). Training
draws a per example, uniformly in [0, max_level]; sampling uses one fixed level.
"""

import jax
import jax.numpy as jnp

from jaxgen.diffusion import parameterization as param
from jaxgen.diffusion import schedules


def alpha_sigma(schedule: schedules.Schedule, level: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(alpha, sigma) [B] of `schedule` at levels [B] in [0, 1]; level 0 is exactly (1, 0)."""
  level = jnp.asarray(level, jnp.float32)
  if isinstance(schedule, schedules.LogSNRSchedule):
    alpha, sigma = schedules.alpha_sigma_from_logsnr(schedule.logsnr(level))
  elif isinstance(schedule, schedules.FlowSchedule):
    alpha, sigma = 1.0 - level, level
  elif isinstance(schedule, schedules.DiscreteSchedule):
    alpha_bar = jnp.asarray(schedule.alphas_cumprod(), jnp.float32)
    grid = jnp.linspace(0.0, 1.0, schedule.num_train_timesteps)
    ab = jnp.interp(level, grid, alpha_bar)
    alpha, sigma = jnp.sqrt(ab), jnp.sqrt(1.0 - ab)
  else:
    raise ValueError(f"schedule={schedule!r} is not supported; expected a DiscreteSchedule, "
                     "LogSNRSchedule or FlowSchedule")
  # Every schedule is slightly noisy at its first step; level 0 means "no augmentation".
  clean = level <= 0.0
  return jnp.where(clean, 1.0, alpha), jnp.where(clean, 0.0, sigma)


def sample_levels(key: jax.Array, batch: int, max_level: float) -> jax.Array:
  """Training levels [B], uniform in [0, max_level]."""
  if not 0.0 <= max_level <= 1.0:
    raise ValueError(f"max_level={max_level!r}; expected a number in [0, 1]")
  return max_level * jax.random.uniform(key, (batch,))


def augment(key: jax.Array, x: jax.Array, level: jax.Array | float,
            schedule: schedules.Schedule) -> jax.Array:
  """x: [B, ...] noised to level [B] (or one number): alpha(a) x + sigma(a) eps, same shape."""
  level = jnp.broadcast_to(jnp.asarray(level, jnp.float32), x.shape[:1])
  alpha, sigma = alpha_sigma(schedule, level)
  eps = jax.random.normal(key, x.shape, jnp.float32)
  return param.q_sample(x.astype(jnp.float32), eps, alpha, sigma).astype(x.dtype)
