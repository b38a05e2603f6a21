"""Samplers built on the Gaussian posterior q(x_s | x_t, x_0): DDPM and DDIM.

With alpha_{t|s} = alpha_t / alpha_s and sigma_{t|s}^2 = sigma_t^2 - alpha_{t|s}^2 sigma_s^2
(Kingma et al. 2021, eq. 32), the posterior from the noisier level t to level s is
N(alpha_{t|s} sigma_s^2 / sigma_t^2 x_t + alpha_s sigma_{t|s}^2 / sigma_t^2 x_0,
  sigma_{t|s}^2 sigma_s^2 / sigma_t^2).
"""

import jax
import jax.numpy as jnp


def _posterior(plan, i):
  """(coef_xt, coef_x0, variance) of the posterior from level i to level i + 1."""
  a_t, s_t = plan.alpha[i], plan.sigma[i]
  a_s, s_s = plan.alpha[i + 1], plan.sigma[i + 1]
  a_ts = a_t / a_s
  s2_ts = jnp.maximum(s_t**2 - a_ts**2 * s_s**2, 0.0)
  return a_ts * s_s**2 / s_t**2, a_s * s2_ts / s_t**2, s2_ts * s_s**2 / s_t**2


def init(config, plan, x):
  del config, plan
  return {"x": x}


def ddpm_step(config, plan, i, state, predict, key):
  """Ancestral sampling (Ho et al. 2020, Alg. 2): draw x_s from the posterior at the predicted x_0."""
  del config
  x = state["x"]
  x0, _ = predict(x, plan.t[i], plan.alpha[i], plan.sigma[i])
  c_xt, c_x0, var = _posterior(plan, i)
  z = jax.random.normal(key, x.shape, x.dtype)
  return {"x": c_xt * x + c_x0 * x0 + jnp.sqrt(var) * z}


def ddim_step(config, plan, i, state, predict, key):
  """DDIM (Song et al. 2021, eq. 12): eta = 0 is deterministic, eta = 1 has DDPM's variance."""
  x = state["x"]
  x0, eps = predict(x, plan.t[i], plan.alpha[i], plan.sigma[i])
  _, _, var = _posterior(plan, i)
  std = config.eta * jnp.sqrt(var)
  a_s, s_s = plan.alpha[i + 1], plan.sigma[i + 1]
  x_s = a_s * x0 + jnp.sqrt(jnp.maximum(s_s**2 - std**2, 0.0)) * eps
  if config.eta > 0:
    x_s = x_s + std * jax.random.normal(key, x.shape, x.dtype)
  return {"x": x_s}
