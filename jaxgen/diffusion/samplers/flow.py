"""Euler on the rectified-flow ODE dx/ds = u = eps - x_0 (Lipman et al. 2023; Esser et al. 2024)."""


def init(config, plan, x):
  del config, plan
  return {"x": x}


def euler_step(config, plan, i, state, predict, key):
  del config, key
  x = state["x"]
  x0, eps = predict(x, plan.t[i], plan.alpha[i], plan.sigma[i])
  return {"x": x + (plan.sigma[i + 1] - plan.sigma[i]) * (eps - x0)}
