"""Noise schedules: how much signal and noise a sample holds at each noise level.

Every schedule maps a noise level to `(t, alpha, sigma)`: the timestep value the
network is conditioned on, and the coefficients of x_t = alpha * x_0 + sigma * eps.
Three families, as a frozen (hashable, jit-static) dataclass each:

- `DiscreteSchedule`: DDPM's variance-preserving chain of T betas (linear,
  scaled-linear, cosine), optionally rescaled to zero terminal SNR.
- `LogSNRSchedule`: continuous time u in [0, 1] with log-SNR lambda(u)
  (cosine or linear in lambda), as used by v-prediction video models.
- `FlowSchedule`: rectified flow x_t = (1 - s) x_0 + s eps, with the static
  shift s' = k s / (1 + (k - 1) s) or the resolution-dependent dynamic shift.

Grids are built on the host in float64 NumPy: they are static per config and
become constants of the compiled sampling loop.
"""

import dataclasses
import math

import numpy as np

BETA_SCHEDULES = ("linear", "scaled_linear", "cosine")
SPACINGS = ("leading", "trailing", "linspace")
LOGSNR_SCHEDULES = ("cosine", "linear")


def check_choice(name: str, value, choices) -> None:
  if value not in choices:
    raise ValueError(f"{name}={value!r} is not supported; expected one of {', '.join(map(repr, choices))}")


def check_positive(name: str, value) -> None:
  if not value > 0:
    raise ValueError(f"{name}={value!r} is not supported; expected a number > 0")


# ---------------------------------------------------------------- betas (DDPM)


def linear_betas(num_train_timesteps: int, beta_start: float, beta_end: float) -> np.ndarray:
  """Ho et al. (2020): betas evenly spaced. Returns [T]."""
  return np.linspace(beta_start, beta_end, num_train_timesteps, dtype=np.float64)


def scaled_linear_betas(num_train_timesteps: int, beta_start: float, beta_end: float) -> np.ndarray:
  """Latent diffusion's schedule: sqrt(beta) evenly spaced. Returns [T]."""
  return np.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=np.float64) ** 2


def cosine_betas(num_train_timesteps: int, max_beta: float = 0.999, s: float = 0.008) -> np.ndarray:
  """Nichol & Dhariwal (2021), eq. 17: alpha_bar(t) = cos^2((t + s) / (1 + s) * pi / 2). Returns [T]."""
  def alpha_bar(u):
    return np.cos((u + s) / (1 + s) * np.pi / 2) ** 2
  u = np.arange(num_train_timesteps + 1, dtype=np.float64) / num_train_timesteps
  return np.minimum(1 - alpha_bar(u[1:]) / alpha_bar(u[:-1]), max_beta)


def rescale_zero_terminal_snr(betas: np.ndarray) -> np.ndarray:
  """Lin et al. (2024), Algorithm 1: shift and scale sqrt(alpha_bar) so the last step is pure noise."""
  sqrt_ab = np.sqrt(np.cumprod(1.0 - betas))
  first, last = sqrt_ab[0], sqrt_ab[-1]
  sqrt_ab = (sqrt_ab - last) * first / (first - last)
  alpha_bar = sqrt_ab**2
  alphas = np.concatenate([alpha_bar[:1], alpha_bar[1:] / alpha_bar[:-1]])
  return 1.0 - alphas


def spaced_timesteps(num_train_timesteps: int, num_steps: int, spacing: str,
                     steps_offset: int = 0) -> np.ndarray:
  """The model timesteps of an N-step sampler, descending (Lin et al. 2024, Table 2). Returns [N].

  leading: 0, T/N, 2T/N, ... (+offset); trailing: T-1, T-1-T/N, ...; linspace:
  evenly from T-1 to 0 (fractional values are interpolated by the schedule).
  """
  check_choice("spacing", spacing, SPACINGS)
  if not 0 < num_steps <= num_train_timesteps:
    raise ValueError(f"num_steps={num_steps!r} is not supported; expected 1 <= num_steps <= "
                     f"num_train_timesteps={num_train_timesteps}")
  if spacing == "leading":
    return (np.arange(num_steps) * (num_train_timesteps // num_steps))[::-1] + float(steps_offset)
  if spacing == "trailing":
    ratio = num_train_timesteps / num_steps
    return np.round(np.arange(num_train_timesteps, 0, -ratio)) - 1.0
  return np.linspace(0, num_train_timesteps - 1, num_steps)[::-1].copy()


def karras_sigmas(sigma_min: float, sigma_max: float, num_steps: int, rho: float = 7.0) -> np.ndarray:
  """Karras et al. (2022), eq. 5: sigmas evenly spaced in sigma^(1/rho), descending. Returns [N]."""
  ramp = np.linspace(0.0, 1.0, num_steps)
  lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
  return (hi + ramp * (lo - hi)) ** rho


@dataclasses.dataclass(frozen=True)
class DiscreteSchedule:
  """DDPM's variance-preserving schedule over T discrete timesteps."""
  num_train_timesteps: int = 1000
  beta_schedule: str = "linear"  # linear | scaled_linear | cosine
  beta_start: float = 0.0001
  beta_end: float = 0.02
  rescale_zero_terminal_snr: bool = False  # Lin et al. (2024): pair with v-prediction

  def __post_init__(self):
    check_choice("beta_schedule", self.beta_schedule, BETA_SCHEDULES)
    if self.num_train_timesteps < 2:
      raise ValueError(f"num_train_timesteps={self.num_train_timesteps!r} is not supported; expected >= 2")

  def betas(self) -> np.ndarray:
    """[T]"""
    if self.beta_schedule == "linear":
      betas = linear_betas(self.num_train_timesteps, self.beta_start, self.beta_end)
    elif self.beta_schedule == "scaled_linear":
      betas = scaled_linear_betas(self.num_train_timesteps, self.beta_start, self.beta_end)
    else:
      betas = cosine_betas(self.num_train_timesteps)
    return rescale_zero_terminal_snr(betas) if self.rescale_zero_terminal_snr else betas

  def alphas_cumprod(self) -> np.ndarray:
    """alpha_bar_t = prod_{s<=t} (1 - beta_s). Returns [T]."""
    return np.cumprod(1.0 - self.betas())

  def ve_sigmas(self) -> np.ndarray:
    """The variance-exploding sigma = sqrt((1 - alpha_bar) / alpha_bar) of each timestep. Returns [T]."""
    # Zero terminal SNR makes alpha_bar_T exactly 0, where this sigma is infinite;
    # a float32-epsilon floor keeps it finite (as k-diffusion samplers need).
    alpha_bar = np.maximum(self.alphas_cumprod(), 2.0**-24)
    return np.sqrt((1.0 - alpha_bar) / alpha_bar)

  def at_timesteps(self, t: np.ndarray):
    """(t, alpha, sigma) at timesteps; between integers, VE sigma is interpolated linearly."""
    t = np.asarray(t, np.float64)
    _, alpha, sigma = _from_ve_sigma(t, np.interp(t, np.arange(self.num_train_timesteps), self.ve_sigmas()))
    on_grid = t == np.round(t)
    alpha_bar = self.alphas_cumprod()[np.clip(np.round(t), 0, self.num_train_timesteps - 1).astype(int)]
    alpha = np.where(on_grid, np.sqrt(alpha_bar), alpha)
    sigma = np.where(on_grid, np.sqrt(1.0 - alpha_bar), sigma)
    return t, alpha, sigma

  def at_ve_sigmas(self, ve: np.ndarray):
    """(t, alpha, sigma) at VE sigmas; t interpolates log-sigma between timesteps (k-diffusion)."""
    ve = np.asarray(ve, np.float64)
    log_sigmas = np.log(self.ve_sigmas())
    t = np.interp(np.log(np.maximum(ve, 1e-10)), log_sigmas, np.arange(self.num_train_timesteps))
    return _from_ve_sigma(t, ve)

  def clean(self):
    """The noise-free end point: alpha=1, sigma=0."""
    return np.zeros(1), np.ones(1), np.zeros(1)


def _from_ve_sigma(t, ve):
  alpha = 1.0 / np.sqrt(ve**2 + 1.0)
  return t, alpha, ve * alpha


# ---------------------------------------------------------------- log-SNR (continuous time)


def logsnr_cosine(u, logsnr_min: float = -20.0, logsnr_max: float = 20.0):
  """The cosine schedule as log-SNR, truncated to [logsnr_min, logsnr_max] (Kingma et al. 2021; VDM).

  lambda(u) = -2 log tan(a u + b), with a, b chosen so lambda(0)=max, lambda(1)=min.
  Works on NumPy and JAX arrays alike (for training, u is sampled per example).
  """
  xp = np if isinstance(u, (float, int, np.ndarray)) else _jnp()
  b = math.atan(math.exp(-0.5 * logsnr_max))
  a = math.atan(math.exp(-0.5 * logsnr_min)) - b
  return -2.0 * xp.log(xp.tan(a * u + b))


def logsnr_linear(u, logsnr_min: float = -10.0, logsnr_max: float = 10.0):
  """log-SNR linear in time: lambda(u) = max + u (min - max)."""
  return logsnr_max + u * (logsnr_min - logsnr_max)


def _jnp():
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  return jnp


def alpha_sigma_from_logsnr(logsnr):
  """Variance-preserving alpha = sqrt(sigmoid(lambda)), sigma = sqrt(sigmoid(-lambda))."""
  xp = np if isinstance(logsnr, (float, int, np.ndarray)) else _jnp()
  return xp.sqrt(1.0 / (1.0 + xp.exp(-logsnr))), xp.sqrt(1.0 / (1.0 + xp.exp(logsnr)))


@dataclasses.dataclass(frozen=True)
class LogSNRSchedule:
  """Continuous time u in [0, 1] (1 = noise); the network sees t = u * time_scale."""
  kind: str = "cosine"  # cosine | linear
  logsnr_min: float = -20.0
  logsnr_max: float = 20.0
  time_scale: float = 1000.0  # keeps timestep embeddings in the range discrete models use

  def __post_init__(self):
    check_choice("kind", self.kind, LOGSNR_SCHEDULES)
    if not self.logsnr_min < self.logsnr_max:
      raise ValueError(f"logsnr_min={self.logsnr_min!r} is not supported; expected < "
                       f"logsnr_max={self.logsnr_max!r}")

  def logsnr(self, u):
    fn = logsnr_cosine if self.kind == "cosine" else logsnr_linear
    return fn(u, self.logsnr_min, self.logsnr_max)

  def at_times(self, u: np.ndarray):
    """(t, alpha, sigma) at continuous times u."""
    u = np.asarray(u, np.float64)
    alpha, sigma = alpha_sigma_from_logsnr(self.logsnr(u))
    return u * self.time_scale, alpha, sigma

  def clean(self):
    return np.zeros(1), np.ones(1), np.zeros(1)


# ---------------------------------------------------------------- flow matching


def shift_sigmas(sigmas, shift: float):
  """SD3's static timestep shift: s' = k s / (1 + (k - 1) s) (Esser et al. 2024, eq. 23)."""
  check_positive("shift", shift)
  return shift * sigmas / (1 + (shift - 1) * sigmas)


def dynamic_shift_mu(seq_len: int, base_seq_len: int = 256, max_seq_len: int = 4096,
                     base_shift: float = 0.5, max_shift: float = 1.15) -> float:
  """Resolution-dependent shift exponent mu, linear in the token count (Flux)."""
  if seq_len <= 0:
    raise ValueError(f"seq_len={seq_len!r} is not supported; expected the number of latent tokens > 0")
  slope = (max_shift - base_shift) / (max_seq_len - base_seq_len)
  return base_shift + slope * (seq_len - base_seq_len)


def time_shift_exponential(sigmas, mu: float):
  """s' = e^mu / (e^mu + 1/s - 1): the static shift with k = e^mu."""
  return math.exp(mu) / (math.exp(mu) + (1.0 / sigmas - 1.0))


@dataclasses.dataclass(frozen=True)
class FlowSchedule:
  """Rectified flow x_s = (1 - s) x_0 + s eps; the network sees t = s * T."""
  num_train_timesteps: int = 1000
  shift: float = 1.0  # static shift k; > 1 spends more steps at high noise
  dynamic_shift_mu: float | None = None  # if set, replaces `shift` by k = e^mu (see dynamic_shift_mu)

  def __post_init__(self):
    check_positive("shift", self.shift)
    if self.num_train_timesteps < 2:
      raise ValueError(f"num_train_timesteps={self.num_train_timesteps!r} is not supported; expected >= 2")

  def shifted(self, sigmas):
    if self.dynamic_shift_mu is not None:
      return time_shift_exponential(sigmas, self.dynamic_shift_mu)
    return shift_sigmas(sigmas, self.shift)

  def unshifted(self, sigmas):
    """The inverse of `shifted`: s = s' / (k - (k - 1) s'); both shifts have this form."""
    k = self.shift if self.dynamic_shift_mu is None else math.exp(self.dynamic_shift_mu)
    return sigmas / (k - (k - 1) * sigmas)

  def sampling_sigmas(self, num_steps: int) -> np.ndarray:
    """N sigmas, descending: evenly spaced in unshifted s between the training extremes, then shifted. [N]"""
    if num_steps <= 0:
      raise ValueError(f"num_steps={num_steps!r} is not supported; expected an integer > 0")
    # The training grid runs over s = 1/T ... 1; its smallest level is taken after the
    # static shift, matching the grids of the reference implementations.
    s_min = 1.0 / self.num_train_timesteps
    if self.dynamic_shift_mu is None:
      s_min = shift_sigmas(s_min, self.shift)
    return self.shifted(np.linspace(1.0, s_min, num_steps))

  def at_sigmas(self, s: np.ndarray):
    """(t, alpha, sigma) at flow levels s."""
    s = np.asarray(s, np.float64)
    return s * self.num_train_timesteps, 1.0 - s, s

  def clean(self):
    return np.zeros(1), np.ones(1), np.zeros(1)


Schedule = DiscreteSchedule | LogSNRSchedule | FlowSchedule
