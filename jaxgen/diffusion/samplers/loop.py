"""The sampling loop: all N steps, with guidance, as one `lax.scan`."""

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.diffusion import guidance as cfg_lib
from jaxgen.diffusion import parameterization as param
from jaxgen.diffusion import plan as plan_lib
from jaxgen.diffusion import schedules
from jaxgen.diffusion.samplers.registry import SamplerConfig

Denoiser = Callable[[jax.Array, jax.Array, Any], jax.Array]  # (x [B,...], t [B], cond) -> prediction


def make_plan(config: SamplerConfig, schedule: schedules.Schedule) -> plan_lib.Plan:
  """The noise levels `config` visits on `schedule`."""
  if not isinstance(schedule, config.sampler.schedules):
    names = ", ".join(s.__name__ for s in config.sampler.schedules)
    raise ValueError(f"schedule={type(schedule).__name__} is not supported by sampler="
                     f"{config.name!r}; expected one of {names}")
  return plan_lib.make_plan(
      schedule, config.num_steps, spacing=config.spacing, karras=config.use_karras,
      final=config.final, steps_offset=config.steps_offset, s_churn=config.s_churn,
      s_tmin=config.s_tmin, s_tmax=config.s_tmax, strength=config.strength)


def sample(denoiser: Denoiser, noise: jax.Array, cond: Any = None, *, config: SamplerConfig,
           schedule: schedules.Schedule, prediction_type: str, key: jax.Array | None = None,
           guidance_scale: float | jax.Array = 1.0, negative_cond: Any = None,
           guidance_rescale: float = 0.0, x_init: jax.Array | None = None,
           return_trajectory: bool = False):
  """Runs the sampler from noise (or from x_init noised to the strength's level).

  denoiser(x, t, cond) -> prediction of `prediction_type`; x: [B, ...], t: [B].
  noise: [B, ...] standard normal. guidance_scale: a number or per-step weights
  [config.num_steps]; with negative_cond, classifier-free guidance evaluates both
  branches in one call on the doubled batch. Returns x_0: [B, ...], and with
  return_trajectory the sample after each step, [N, B, ...].
  Jit it with the callables and configs static; the loop is one XLA while loop.
  """
  param.check_prediction_type(prediction_type)
  plan = make_plan(config, schedule)
  sampler = config.sampler
  if sampler.stochastic(config) and key is None:
    raise ValueError(f"key=None is not supported by sampler={config.name!r} with these options; "
                     "expected a jax.random key")
  if x_init is not None and np.shape(x_init) != np.shape(noise):
    raise ValueError(f"x_init has shape {np.shape(x_init)}; expected the shape of noise, {np.shape(noise)}")
  if x_init is None and config.strength < 1.0:
    raise ValueError(f"strength={config.strength!r} needs x_init; expected x_init of shape {np.shape(noise)}")

  weights = jnp.asarray(guidance_scale, jnp.float32)
  if weights.ndim == 1 and weights.shape[0] != config.num_steps:
    raise ValueError(f"guidance_scale has shape {weights.shape}; expected a number or "
                     f"[num_steps] = [{config.num_steps}] weights")
  if weights.ndim > 1:
    raise ValueError(f"guidance_scale has shape {weights.shape}; expected a number or [num_steps]")
  weights = jnp.broadcast_to(weights, (config.num_steps,))[config.num_steps - plan.num_steps:]

  if negative_cond is not None:
    cfg_lib.check_negative_cond(cond, negative_cond)
    model = cfg_lib.guided(denoiser, cond, negative_cond, guidance_rescale)
  else:
    model = lambda x, t, w: denoiser(x, t, cond).astype(jnp.float32)

  noise = jnp.asarray(noise, jnp.float32)
  batch = noise.shape[0]
  if x_init is None:
    x = noise
  else:
    x = param.q_sample(jnp.asarray(x_init, jnp.float32), noise, plan.alpha[0], plan.sigma[0])
  if plan.num_steps == 0:  # strength 0: nothing to denoise
    return (x, x[None][:0]) if return_trajectory else x
  key = jax.random.key(0) if key is None else key

  def body(state, i):
    def predict(x, t, alpha, sigma):
      prediction = model(x, jnp.full((batch,), t, jnp.float32), weights[i])
      return param.to_x0_eps(prediction, x, alpha, sigma, prediction_type)

    state = sampler.step(config, plan, i, state, predict, jax.random.fold_in(key, i))
    return state, state["x"] if return_trajectory else None

  state, trajectory = jax.lax.scan(body, sampler.init(config, plan, x), jnp.arange(plan.num_steps))
  return (state["x"], trajectory) if return_trajectory else state["x"]
