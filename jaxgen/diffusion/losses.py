"""Training: noise levels, targets and the weighted denoising loss."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.diffusion import parameterization as param
from jaxgen.diffusion import schedules

WEIGHTINGS = ("uniform", "min_snr")


def sample_noise_level(schedule: schedules.Schedule, key, batch: int, *,
                       logit_normal: tuple[float, float] | None = None,
                       interval: tuple[float, float] = (0.0, 1.0)):
  """Noise levels for a training batch: (t, alpha, sigma), each [B].

  Discrete: t ~ U{0..T-1}. Log-SNR: u ~ U(0, 1). Flow: s ~ U(0, 1), or
  logit-normal(m, s) as in SD3 (Esser et al. 2024, eq. 19), then the schedule's shift.
  interval (flow only): the levels s (after the shift) restricted to [lo, hi], with the same
  distribution within it: the range that one noise-level expert trains on.
  """
  lo, hi = interval
  if not 0.0 <= lo < hi <= 1.0:
    raise ValueError(f"interval={interval!r}; expected 0 <= lo < hi <= 1")
  if interval != (0.0, 1.0) and not isinstance(schedule, schedules.FlowSchedule):
    raise ValueError(f"interval={interval!r} is supported for a FlowSchedule only, got {schedule!r}")
  if isinstance(schedule, schedules.DiscreteSchedule):
    t = jax.random.randint(key, (batch,), 0, schedule.num_train_timesteps)
    alpha_bar = jnp.asarray(schedule.alphas_cumprod(), jnp.float32)[t]
    return t.astype(jnp.float32), jnp.sqrt(alpha_bar), jnp.sqrt(1.0 - alpha_bar)
  if isinstance(schedule, schedules.LogSNRSchedule):
    u = jax.random.uniform(key, (batch,))
    alpha, sigma = schedules.alpha_sigma_from_logsnr(schedule.logsnr(u))
    return u * schedule.time_scale, alpha, sigma
  if isinstance(schedule, schedules.FlowSchedule):
    # The shift is increasing, so the interval maps to an interval of unshifted levels.
    lo, hi = schedule.unshifted(lo), schedule.unshifted(hi)
    if logit_normal is None:
      s = jax.random.uniform(key, (batch,), minval=lo, maxval=hi)
    else:
      mean, std = logit_normal
      with np.errstate(divide="ignore"):  # logit(0) = -inf, logit(1) = inf: no bound
        lower, upper = ((np.log(v) - np.log1p(-v) - mean) / std for v in (lo, hi))
      s = jax.nn.sigmoid(mean + std * jax.random.truncated_normal(key, lower, upper, (batch,)))
    s = schedule.shifted(s)
    return s * schedule.num_train_timesteps, 1.0 - s, s
  raise ValueError(f"schedule={schedule!r} is not supported; expected a DiscreteSchedule, "
                   "LogSNRSchedule or FlowSchedule")


def loss_weight(alpha, sigma, prediction_type: str, weighting: str = "uniform",
                gamma: float = 5.0):
  """Per-example weight [B] of the squared error of a prediction.

  min_snr (Hang et al. 2023) weights the error of x_0 by min(SNR, gamma); on
  another prediction this is min(SNR, gamma) * |dx_0/dprediction|^2, which gives
  min(SNR, gamma)/SNR for epsilon and min(SNR, gamma)/(SNR + 1) for v.
  """
  if weighting not in WEIGHTINGS:
    raise ValueError(f"weighting={weighting!r} is not supported; expected one of {WEIGHTINGS}")
  param.check_prediction_type(prediction_type)
  if weighting == "uniform":
    return jnp.ones_like(alpha)
  a2, s2 = jnp.square(alpha), jnp.square(sigma)
  x0_per_pred = {
      "epsilon": s2 / a2,
      "v_prediction": s2 / jnp.square(a2 + s2),
      "sample": jnp.ones_like(a2),
      "flow": s2 / jnp.square(alpha + sigma),
  }[prediction_type]
  return jnp.minimum(a2 / s2, gamma) * x0_per_pred


def diffusion_loss(prediction, x0, eps, alpha, sigma, prediction_type: str, *,
                   weighting: str = "uniform", gamma: float = 5.0, mask=None):
  """Weighted mean squared error to the target, per example: [B].

  prediction, x0, eps: [B, ...]; alpha, sigma: [B]. mask (broadcastable to x0,
  1 = counts) restricts the loss, e.g. to the frames that are not given as conditions.
  """
  target = param.from_x0_eps(x0, eps, alpha, sigma, prediction_type)
  err = jnp.square(prediction.astype(jnp.float32) - target.astype(jnp.float32))
  axes = tuple(range(1, err.ndim))
  if mask is None:
    mse = jnp.mean(err, axis=axes)
  else:
    mask = jnp.broadcast_to(mask, err.shape).astype(jnp.float32)
    mse = jnp.sum(err * mask, axis=axes) / jnp.maximum(jnp.sum(mask, axis=axes), 1.0)
  return loss_weight(alpha, sigma, prediction_type, weighting, gamma) * mse
