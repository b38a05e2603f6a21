"""Sampler names, their step functions, and the static sampler configuration."""

import dataclasses
import math
from typing import Any, Callable, NamedTuple

from jaxgen.diffusion import schedules
from jaxgen.diffusion.samplers import ancestral, flow, karras, multistep


class Sampler(NamedTuple):
  init: Callable[..., Any]  # (config, plan, x) -> state
  step: Callable[..., Any]  # (config, plan, i, state, predict, key) -> state
  evals_per_step: int  # network evaluations per step (at most)
  schedules: tuple  # schedule classes it can run on
  stochastic: Callable[["SamplerConfig"], bool]  # whether it draws noise


_ALL = (schedules.DiscreteSchedule, schedules.LogSNRSchedule, schedules.FlowSchedule)
_VP = (schedules.DiscreteSchedule, schedules.LogSNRSchedule)

SAMPLERS = {
    "ddpm": Sampler(ancestral.init, ancestral.ddpm_step, 1, _ALL, lambda c: True),
    "ddim": Sampler(ancestral.init, ancestral.ddim_step, 1, _ALL, lambda c: c.eta > 0),
    "euler": Sampler(karras.init, karras.euler_step, 1, _VP, lambda c: c.s_churn > 0),
    "heun": Sampler(karras.init, karras.heun_step, 2, _VP, lambda c: c.s_churn > 0),
    "dpmpp_2m": Sampler(multistep.init, multistep.dpmpp_2m_step, 1, _ALL, lambda c: False),
    "unipc": Sampler(multistep.init, multistep.unipc_step, 1, _ALL, lambda c: False),
    "flow_euler": Sampler(flow.init, flow.euler_step, 1, (schedules.FlowSchedule,), lambda c: False),
}


@dataclasses.dataclass(frozen=True)
class SamplerConfig:
  """How to sample: static under jit."""
  name: str = "dpmpp_2m"  # see SAMPLERS
  num_steps: int = 25
  spacing: str = "trailing"  # leading | trailing | linspace (discrete schedules)
  karras: bool | None = None  # Karras sigmas; None: on for euler and heun
  final: str = "zero"  # zero | sigma_min: the level the last step lands on
  steps_offset: int = 0  # added to "leading" timesteps (SD uses 1)
  eta: float = 0.0  # ddim: 0 deterministic, 1 DDPM-like
  s_churn: float = 0.0  # euler/heun churn (Karras et al. 2022, Alg. 2)
  s_tmin: float = 0.0
  s_tmax: float = math.inf
  s_noise: float = 1.0
  strength: float = 1.0  # SDEdit: run the last round(num_steps * strength) steps from a noised input

  def __post_init__(self):
    if self.name not in SAMPLERS:
      raise ValueError(f"sampler={self.name!r} is not supported; expected one of {', '.join(SAMPLERS)}")
    if not isinstance(self.num_steps, int) or self.num_steps <= 0:
      raise ValueError(f"num_steps={self.num_steps!r} is not supported; expected an integer > 0")
    if not 0.0 <= self.strength <= 1.0:
      raise ValueError(f"strength={self.strength!r} is not supported; expected a number in [0, 1]")
    if self.eta < 0:
      raise ValueError(f"eta={self.eta!r} is not supported; expected a number >= 0")
    if self.s_churn < 0:
      raise ValueError(f"s_churn={self.s_churn!r} is not supported; expected a number >= 0")
    if self.s_churn > 0 and self.name not in ("euler", "heun"):
      raise ValueError(f"s_churn={self.s_churn!r} is not supported by sampler={self.name!r}; "
                       "expected 'euler' or 'heun'")
    schedules.check_choice("spacing", self.spacing, schedules.SPACINGS)

  @property
  def sampler(self) -> Sampler:
    return SAMPLERS[self.name]

  @property
  def use_karras(self) -> bool:
    return self.name in ("euler", "heun") if self.karras is None else self.karras
