"""A sampling plan: the noise levels an N-step sampler visits, as arrays.

Step i starts at level i and lands at level i + 1 (N + 1 levels, the last one
normally clean). Each level is (t, alpha, sigma): the network's timestep input
and x_t = alpha x_0 + sigma eps. With churn (Karras et al. 2022, Alg. 2) step i
first raises the noise of level i by a factor (1 + gamma_i), where the network is
then evaluated at timestep t_hat_i.
"""

import math

import flax.struct
import jax.numpy as jnp
import numpy as np

from jaxgen.diffusion import schedules

FINALS = ("zero", "sigma_min")


@flax.struct.dataclass
class Plan:
  t: jnp.ndarray  # [N+1] timestep input of the network at each level
  alpha: jnp.ndarray  # [N+1]
  sigma: jnp.ndarray  # [N+1]
  gamma: jnp.ndarray  # [N] churn: step i evaluates at VE sigma (1 + gamma_i) sigma_i / alpha_i
  t_hat: jnp.ndarray  # [N] timestep input at the churned level (= t[:-1] without churn)

  @property
  def num_steps(self) -> int:
    return self.gamma.shape[0]


def make_plan(schedule: schedules.Schedule, num_steps: int, *, spacing: str = "trailing",
              karras: bool = False, final: str = "zero", steps_offset: int = 0,
              s_churn: float = 0.0, s_tmin: float = 0.0, s_tmax: float = math.inf,
              strength: float = 1.0) -> Plan:
  """The levels of an N-step sampler on `schedule` (host-side, float64 -> float32).

  spacing: leading | trailing | linspace, for discrete schedules.
  karras: Karras et al.'s sigmas between the spaced grid's extremes (discrete schedules).
  final: "zero" lands on the clean sample; "sigma_min" on the schedule's least noisy timestep.
  strength: fraction of the steps to run, from the noise level of an SDEdit start.
  """
  if not isinstance(num_steps, (int, np.integer)) or num_steps <= 0:
    raise ValueError(f"num_steps={num_steps!r} is not supported; expected an integer > 0")
  if final not in FINALS:
    raise ValueError(f"final={final!r} is not supported; expected one of {FINALS}")
  if not 0.0 <= strength <= 1.0:
    raise ValueError(f"strength={strength!r} is not supported; expected a number in [0, 1]")
  if s_churn < 0:
    raise ValueError(f"s_churn={s_churn!r} is not supported; expected a number >= 0")

  if isinstance(schedule, schedules.DiscreteSchedule):
    t_grid = schedules.spaced_timesteps(schedule.num_train_timesteps, num_steps, spacing, steps_offset)
    levels = schedule.at_timesteps(t_grid)
    if karras:
      ve = levels[2] / levels[1]
      levels = schedule.at_ve_sigmas(schedules.karras_sigmas(ve[-1], ve[0], num_steps))
    end = schedule.clean() if final == "zero" else schedule.at_timesteps(np.zeros(1))
  elif karras or s_churn > 0:
    raise ValueError(f"karras={karras!r}, s_churn={s_churn!r} are not supported with "
                     f"{type(schedule).__name__}; expected a DiscreteSchedule")
  elif isinstance(schedule, schedules.LogSNRSchedule):
    levels = schedule.at_times(np.linspace(1.0, 0.0, num_steps + 1)[:-1])
    end = schedule.clean() if final == "zero" else schedule.at_times(np.zeros(1))
  elif isinstance(schedule, schedules.FlowSchedule):
    levels = schedule.at_sigmas(schedule.sampling_sigmas(num_steps))
    end = schedule.clean() if final == "zero" else schedule.at_sigmas(
        np.full(1, 1.0 / schedule.num_train_timesteps))
  else:
    raise ValueError(f"schedule={schedule!r} is not supported; expected a DiscreteSchedule, "
                     "LogSNRSchedule or FlowSchedule")
  t, alpha, sigma = (np.concatenate([a, b]) for a, b in zip(levels, end))

  # Churn (Karras et al. 2022, Alg. 2, line 5).
  gamma, t_hat = np.zeros(num_steps), t[:-1]
  if s_churn > 0:
    ve = sigma[:-1] / alpha[:-1]
    in_range = (ve >= s_tmin) & (ve <= s_tmax)
    gamma = np.where(in_range, min(s_churn / num_steps, math.sqrt(2.0) - 1.0), 0.0)
    t_hat = schedule.at_ve_sigmas(ve * (1.0 + gamma))[0]

  # SDEdit (Meng et al. 2022): run only the last round(N * strength) steps.
  start = num_steps - int(num_steps * strength)
  f32 = lambda a: jnp.asarray(a, jnp.float32)
  return Plan(t=f32(t[start:]), alpha=f32(alpha[start:]), sigma=f32(sigma[start:]),
              gamma=f32(gamma[start:]), t_hat=f32(t_hat[start:]))

