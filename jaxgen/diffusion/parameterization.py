"""What the network predicts, and exact conversions between predictions.

Every noise process here is x_t = alpha * x_0 + sigma * eps (for flow matching,
alpha = 1 - s and sigma = s). A network predicts one of:

- "epsilon": the noise eps (Ho et al. 2020);
- "v_prediction": v = alpha * eps - sigma * x_0 (Salimans & Ho 2022);
- "sample": the clean sample x_0;
- "flow": the flow velocity u = dx_t/ds = eps - x_0 (Lipman et al. 2023).

Given (x_t, alpha, sigma), each prediction determines (x_0, eps) exactly, so the
samplers only ever see (x_0, eps).
"""

import jax.numpy as jnp

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample", "flow")


def check_prediction_type(prediction_type: str) -> None:
  if prediction_type not in PREDICTION_TYPES:
    raise ValueError(f"prediction_type={prediction_type!r} is not supported; expected one of "
                     f"{', '.join(map(repr, PREDICTION_TYPES))}")


def q_sample(x0, eps, alpha, sigma):
  """Forward noising q(x_t | x_0): x_t = alpha x_0 + sigma eps. alpha, sigma broadcast from [B]."""
  return _b(alpha, x0) * x0 + _b(sigma, x0) * eps


def to_x0_eps(prediction, x, alpha, sigma, prediction_type: str):
  """(x_0, eps) implied by a prediction at x_t = x. alpha, sigma: scalars or [B]."""
  a, s = _b(alpha, x), _b(sigma, x)
  if prediction_type == "epsilon":
    return (x - s * prediction) / a, prediction
  if prediction_type == "sample":
    return prediction, (x - a * prediction) / s
  if prediction_type == "v_prediction":
    # Invert [x; v] = [[a, s], [-s, a]] [x0; eps]; the determinant a^2 + s^2 is 1 for VP.
    det = a * a + s * s
    return (a * x - s * prediction) / det, (s * x + a * prediction) / det
  if prediction_type == "flow":
    # x = a x0 + s eps and u = eps - x0; a + s = 1 on the flow path.
    norm = a + s
    return (x - s * prediction) / norm, (x + a * prediction) / norm
  check_prediction_type(prediction_type)


def from_x0_eps(x0, eps, alpha, sigma, prediction_type: str):
  """The training target of `prediction_type` for clean x0 and noise eps."""
  a, s = _b(alpha, x0), _b(sigma, x0)
  if prediction_type == "epsilon":
    return eps
  if prediction_type == "sample":
    return x0
  if prediction_type == "v_prediction":
    return a * eps - s * x0
  if prediction_type == "flow":
    return eps - x0
  check_prediction_type(prediction_type)


def convert(prediction, x, alpha, sigma, source: str, target: str):
  """Re-express a `source` prediction at x_t as a `target` prediction."""
  x0, eps = to_x0_eps(prediction, x, alpha, sigma, source)
  return from_x0_eps(x0, eps, alpha, sigma, target)


def snr(alpha, sigma):
  """Signal-to-noise ratio alpha^2 / sigma^2."""
  return jnp.square(alpha) / jnp.square(sigma)


def _b(coef, x):
  """Broadcast a scalar or per-example [B] coefficient against x: [B, ...]."""
  coef = jnp.asarray(coef, dtype=x.dtype)
  return coef.reshape(coef.shape + (1,) * (x.ndim - coef.ndim)) if coef.ndim else coef
