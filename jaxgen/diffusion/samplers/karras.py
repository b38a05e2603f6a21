"""Euler and Heun on the probability-flow ODE in Karras et al.'s (2022) variables.

With y = x / alpha and sigma~ = sigma / alpha, the ODE is dy/dsigma~ = eps(y): Euler
is Alg. 1 with one evaluation, Heun Alg. 2 with a second-order correction (skipped
on the step into sigma~ = 0). Churn (gamma_i > 0) first adds fresh noise to raise
sigma~ to (1 + gamma_i) sigma~, where the network is then evaluated. These
samplers need a variance-preserving schedule (alpha > 0 everywhere).
"""

import jax
import jax.numpy as jnp


def init(config, plan, x):
  del config, plan
  return {"x": x}


def _churn(config, plan, i, x, key):
  """(y, ve_hat, t_hat, alpha_hat, sigma_hat): the step's start after churn."""
  a, s = plan.alpha[i], plan.sigma[i]
  ve = s / a
  y = x / a
  if config.s_churn == 0:
    return y, ve, plan.t[i], a, s
  gamma = plan.gamma[i]
  ve_hat = ve * (1.0 + gamma)
  z = config.s_noise * jax.random.normal(key, x.shape, x.dtype)
  y = y + jnp.sqrt(ve_hat**2 - ve**2) * z
  a_hat = jnp.where(gamma > 0, jax.lax.rsqrt(1.0 + ve_hat**2), a)
  s_hat = jnp.where(gamma > 0, ve_hat * a_hat, s)
  return y, ve_hat, plan.t_hat[i], a_hat, s_hat


def euler_step(config, plan, i, state, predict, key):
  y, ve, t, a, s = _churn(config, plan, i, state["x"], key)
  _, d = predict(y * a, t, a, s)
  a_next = plan.alpha[i + 1]
  ve_next = plan.sigma[i + 1] / a_next
  return {"x": (y + (ve_next - ve) * d) * a_next}


def heun_step(config, plan, i, state, predict, key):
  y, ve, t, a, s = _churn(config, plan, i, state["x"], key)
  _, d = predict(y * a, t, a, s)
  a_next, s_next = plan.alpha[i + 1], plan.sigma[i + 1]
  ve_next = s_next / a_next
  y_euler = y + (ve_next - ve) * d

  def correct():
    _, d_next = predict(y_euler * a_next, plan.t[i + 1], a_next, s_next)
    return y + (ve_next - ve) * 0.5 * (d + d_next)

  y_next = jax.lax.cond(ve_next > 0, correct, lambda: y_euler)
  return {"x": y_next * a_next}
