"""Multistep exponential integrators in the data prediction x_0: DPM-Solver++(2M) and UniPC.

Both integrate the probability-flow ODE in lambda = log(alpha / sigma), reusing the
previous steps' x_0 predictions instead of extra evaluations. The first step (no
history) and the step into the clean sample are first order, as in the references.
"""

import jax.numpy as jnp

# Floors of alpha and sigma inside logs: lambda stays finite at the pure-noise (alpha = 0)
# and clean (sigma = 0) ends, where the exact updates below become first-order limits.
_TINY = 1e-30


def _lam(plan, i):
  return jnp.log(jnp.maximum(plan.alpha[i], _TINY)) - jnp.log(jnp.maximum(plan.sigma[i], _TINY))


def init(config, plan, x):
  """x_last: the previous step's start; m1, m2: the last two x_0 predictions;
  order: the previous step's order (0 before the first step)."""
  del config, plan
  zeros = jnp.zeros_like(x)
  return {"x": x, "x_last": zeros, "m1": zeros, "m2": zeros, "order": jnp.int32(0)}


def _is_low_order_end(plan, i):
  """The final step is first order when it lands on the clean sample, or for short runs."""
  n = plan.num_steps
  return (i == n - 1) & ((plan.sigma[n] == 0) | (n < 15))


def dpmpp_2m_step(config, plan, i, state, predict, key):
  """DPM-Solver++(2M) (Lu et al. 2022, Alg. 2), midpoint form."""
  del key
  x = state["x"]
  m0, _ = predict(x, plan.t[i], plan.alpha[i], plan.sigma[i])
  lam_s, lam_t = _lam(plan, i), _lam(plan, i + 1)
  h = lam_t - lam_s
  a_t, s_t = plan.alpha[i + 1], plan.sigma[i + 1]
  phi = jnp.expm1(-h)
  first = (s_t / plan.sigma[i]) * x - a_t * phi * m0
  r0 = (lam_s - _lam(plan, jnp.maximum(i - 1, 0))) / h
  d1 = (m0 - state["m1"]) / r0
  second = first - 0.5 * a_t * phi * d1
  use_second = (i > 0) & ~_is_low_order_end(plan, i)
  x_t = jnp.where(use_second, second, first)
  return {**state, "x": x_t, "m1": m0, "order": jnp.where(use_second, 2, 1)}


def _bh2_coefficients(h):
  """(B(h), phi_1 term, b_1, b_2) of UniPC's B(h) = e^h - 1 variant ("bh2"), in -h for x_0."""
  hh = -h
  h_phi_1 = jnp.expm1(hh)
  b_h = h_phi_1
  h_phi_k1 = h_phi_1 / hh - 1.0
  h_phi_k2 = h_phi_k1 / hh - 0.5
  return b_h, h_phi_1, h_phi_k1 / b_h, 2.0 * h_phi_k2 / b_h


def unipc_step(config, plan, i, state, predict, key):
  """UniPC (Zhao et al. 2023) of order 2 with B(h) = e^h - 1: corrector UniC, then predictor UniP."""
  del key
  x = state["x"]
  m0, _ = predict(x, plan.t[i], plan.alpha[i], plan.sigma[i])
  lam_i = _lam(plan, i)
  lam_prev = _lam(plan, jnp.maximum(i - 1, 0))
  lam_prev2 = _lam(plan, jnp.maximum(i - 2, 0))

  # UniC: correct this step's start with the new evaluation m0, at the order the
  # previous predictor used (the evaluation is free: the predictor needs it anyway).
  h = lam_i - lam_prev
  b_h, h_phi_1, b1, b2 = _bh2_coefficients(h)
  a_i = plan.alpha[i]
  base = (plan.sigma[i] / plan.sigma[jnp.maximum(i - 1, 0)]) * state["x_last"] - a_i * h_phi_1 * state["m1"]
  d1_t = m0 - state["m1"]
  corrected_1 = base - a_i * b_h * 0.5 * d1_t
  rk = (lam_prev2 - lam_prev) / h
  d1 = (state["m2"] - state["m1"]) / rk
  # Solve [[1, 1], [rk, 1]] rho = [b1, b2].
  rho0 = (b1 - b2) / (1.0 - rk)
  rho1 = b1 - rho0
  corrected_2 = base - a_i * b_h * (rho0 * d1 + rho1 * d1_t)
  corrected = jnp.where(state["order"] >= 2, corrected_2, corrected_1)
  x = jnp.where(state["order"] >= 1, corrected, x)

  # UniP: predict the next level; second order needs one earlier evaluation, and the
  # last step is first order.
  order = jnp.minimum(jnp.minimum(2, plan.num_steps - i), i + 1)
  h = _lam(plan, i + 1) - lam_i
  b_h, h_phi_1, _, _ = _bh2_coefficients(h)
  a_t = plan.alpha[i + 1]
  predicted_1 = (plan.sigma[i + 1] / plan.sigma[i]) * x - a_t * h_phi_1 * m0
  rk = (lam_prev - lam_i) / h
  predicted_2 = predicted_1 - a_t * b_h * 0.5 * (state["m1"] - m0) / rk
  x_next = jnp.where(order >= 2, predicted_2, predicted_1)
  return {"x": x_next, "x_last": x, "m1": m0, "m2": state["m1"], "order": order}
