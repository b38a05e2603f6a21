"""Samplers against diffusers' PyTorch schedulers, driven by the same analytic denoiser.

Data is Gaussian, x_0 ~ N(mu, diag(s^2)), so the exact posterior mean
E[x_0 | x_t] = mu + a s^2 / (a^2 s^2 + sigma^2) (x_t - a mu) is the ideal denoiser:
both implementations see identical predictions, and the samples must follow the
true data distribution.
"""

import functools

import diffusers
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from jaxgen.bench.reference import rel_err
from jaxgen.diffusion import schedules
from jaxgen.diffusion.samplers import SamplerConfig, sample

MU = np.array([1.0, -0.5, 0.25, 2.0], np.float32)
STD = np.array([0.5, 1.0, 0.2, 0.8], np.float32)
SHAPE = (3, 4)  # [B, D]


def gaussian_denoiser(x, t, xp, level_of_t, prediction_type):
  """The exact x_0-posterior mean for N(MU, STD^2) data, expressed as `prediction_type`."""
  a, s = level_of_t(t)
  a, s = a[:, None], s[:, None]
  mu, var = xp.asarray(MU), xp.asarray(STD) ** 2
  x0 = mu + a * var / (a * a * var + s * s) * (x - a * mu)
  eps = (x - a * x0) / s
  return {"epsilon": eps, "v_prediction": a * eps - s * x0, "sample": x0, "flow": eps - x0}[prediction_type]


def discrete_levels(schedule, xp):
  """t -> (alpha, sigma): VE sigma log-linear between integer timesteps (inverts k-diffusion's t(sigma))."""
  log_sigmas = xp.asarray(np.log(schedule.ve_sigmas()).astype(np.float32))
  grid = xp.asarray(np.arange(schedule.num_train_timesteps, dtype=np.float32))

  def level(t):
    ve = xp.exp(xp.interp(t, grid, log_sigmas))
    a = 1.0 / xp.sqrt(ve * ve + 1.0)
    return a, ve * a
  return level


def flow_levels(schedule, xp):
  del xp
  return lambda t: (1.0 - t / schedule.num_train_timesteps, t / schedule.num_train_timesteps)


def run_diffusers(scheduler, num_steps, noise, levels, prediction_type, step_kwargs=lambda i: {}):
  """Drives a diffusers scheduler; returns the variance-preserving sample after each full step."""
  scheduler.set_timesteps(num_steps)
  heun = isinstance(scheduler, diffusers.HeunDiscreteScheduler)
  karras_space = isinstance(scheduler, (diffusers.EulerDiscreteScheduler, diffusers.HeunDiscreteScheduler))
  x = torch.from_numpy(noise)
  if karras_space:  # the same start, in its variance-exploding scale
    x = x * (scheduler.sigmas[0] ** 2 + 1) ** 0.5
  trajectory = []
  for i, t in enumerate(scheduler.timesteps):
    inp = scheduler.scale_model_input(x, t) if hasattr(scheduler, "scale_model_input") else x
    tt = np.full((x.shape[0],), float(t), np.float32)
    out = gaussian_denoiser(inp.numpy(), tt, np, levels, prediction_type)
    x = scheduler.step(torch.from_numpy(np.asarray(out, np.float32)), t, x, **step_kwargs(i)).prev_sample
    complete = not heun or scheduler.state_in_first_order or i == len(scheduler.timesteps) - 1
    if complete:
      vp = x
      if karras_space:  # diffusers keeps these in the variance-exploding scale x / alpha
        vp = x / (scheduler.sigmas[scheduler.step_index] ** 2 + 1) ** 0.5
      trajectory.append(vp.numpy().astype(np.float64))
  return np.stack(trajectory)


@functools.lru_cache(maxsize=None)
def jitted_sampler(config, schedule, prediction_type, level_kind):
  """One compiled sampler per configuration, reused across tests."""
  levels = (discrete_levels if level_kind == "discrete" else flow_levels)(schedule, jnp)
  denoiser = lambda x, t, cond: gaussian_denoiser(x, t, jnp, levels, prediction_type)
  fn = functools.partial(sample, denoiser, config=config, schedule=schedule,
                         prediction_type=prediction_type, return_trajectory=True)
  return jax.jit(lambda noise, key: fn(noise, key=key))


SD = dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)

CASES = {
    # name: (our sampler config, our schedule, diffusers scheduler, prediction type)
    "ddpm": (SamplerConfig("ddpm", 20, spacing="leading"), schedules.DiscreteSchedule(),
             diffusers.DDPMScheduler(clip_sample=False), "epsilon"),
    "ddpm_v_cosine": (SamplerConfig("ddpm", 20, spacing="trailing"),
                      schedules.DiscreteSchedule(beta_schedule="cosine"),
                      diffusers.DDPMScheduler(beta_schedule="squaredcos_cap_v2", timestep_spacing="trailing",
                                              prediction_type="v_prediction", clip_sample=False),
                      "v_prediction"),
    "ddim": (SamplerConfig("ddim", 20, spacing="leading"), schedules.DiscreteSchedule(**SD),
             diffusers.DDIMScheduler(**SD, clip_sample=False), "epsilon"),
    "ddim_eta": (SamplerConfig("ddim", 20, spacing="trailing", eta=0.7), schedules.DiscreteSchedule(**SD),
                 diffusers.DDIMScheduler(**SD, clip_sample=False, timestep_spacing="trailing"), "epsilon"),
    "ddim_zero_snr_v": (SamplerConfig("ddim", 25, spacing="trailing"),
                        schedules.DiscreteSchedule(**SD, rescale_zero_terminal_snr=True),
                        diffusers.DDIMScheduler(**SD, clip_sample=False, timestep_spacing="trailing",
                                                rescale_betas_zero_snr=True, prediction_type="v_prediction"),
                        "v_prediction"),
    "euler_karras": (SamplerConfig("euler", 25, spacing="linspace"), schedules.DiscreteSchedule(**SD),
                     diffusers.EulerDiscreteScheduler(**SD, use_karras_sigmas=True), "epsilon"),
    "euler_karras_v": (SamplerConfig("euler", 15, spacing="trailing"), schedules.DiscreteSchedule(**SD),
                       diffusers.EulerDiscreteScheduler(**SD, use_karras_sigmas=True, timestep_spacing="trailing",
                                                        prediction_type="v_prediction"), "v_prediction"),
    "heun_karras": (SamplerConfig("heun", 12, spacing="linspace"), schedules.DiscreteSchedule(**SD),
                    diffusers.HeunDiscreteScheduler(**SD, use_karras_sigmas=True), "epsilon"),
    "dpmpp_2m": (SamplerConfig("dpmpp_2m", 20), schedules.DiscreteSchedule(**SD),
                 diffusers.DPMSolverMultistepScheduler(**SD, timestep_spacing="trailing"), "epsilon"),
    "dpmpp_2m_short_v": (SamplerConfig("dpmpp_2m", 8), schedules.DiscreteSchedule(),
                         diffusers.DPMSolverMultistepScheduler(timestep_spacing="trailing",
                                                               prediction_type="v_prediction"),
                         "v_prediction"),
    "unipc": (SamplerConfig("unipc", 20), schedules.DiscreteSchedule(**SD),
              diffusers.UniPCMultistepScheduler(**SD, timestep_spacing="trailing"), "epsilon"),
    "unipc_short": (SamplerConfig("unipc", 6), schedules.DiscreteSchedule(),
                    diffusers.UniPCMultistepScheduler(timestep_spacing="trailing"), "epsilon"),
    "flow_euler": (SamplerConfig("flow_euler", 20), schedules.FlowSchedule(shift=3.0),
                   diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0), "flow"),
    "flow_euler_dynamic": (SamplerConfig("flow_euler", 10),
                           schedules.FlowSchedule(dynamic_shift_mu=schedules.dynamic_shift_mu(1024)),
                           diffusers.FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True), "flow"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_matches_diffusers_trajectory(name, monkeypatch):
  config, schedule, scheduler, prediction_type = CASES[name]
  kind = "flow" if isinstance(schedule, schedules.FlowSchedule) else "discrete"
  noise = np.asarray(jax.random.normal(jax.random.key(1), SHAPE), np.float32)
  key = jax.random.key(2)
  ours_x0, ours = jitted_sampler(config, schedule, prediction_type, kind)(noise, key)

  # Both sides draw the same per-step noise: ours is normal(fold_in(key, i)).
  step_noise = [torch.from_numpy(np.asarray(jax.random.normal(jax.random.fold_in(key, i), SHAPE)))
                for i in range(config.num_steps)]
  step_kwargs = lambda i: {}
  if config.name == "ddpm":
    draws = iter(step_noise)
    monkeypatch.setattr(diffusers.schedulers.scheduling_ddpm, "randn_tensor", lambda *a, **k: next(draws))
  if config.name == "ddim":
    step_kwargs = lambda i: {"eta": config.eta, "variance_noise": step_noise[i]}
  if kind == "flow":
    scheduler.set_timesteps = functools.partial(
        scheduler.set_timesteps, mu=schedule.dynamic_shift_mu) if schedule.dynamic_shift_mu else \
        scheduler.set_timesteps
  levels = (discrete_levels if kind == "discrete" else flow_levels)(schedule, np)
  theirs = run_diffusers(scheduler, config.num_steps, noise, levels, prediction_type, step_kwargs)

  assert ours.shape == theirs.shape
  for i in range(len(theirs)):
    assert rel_err(ours[i], theirs[i]) <= 1e-5, f"step {i}: {rel_err(ours[i], theirs[i])}"
  np.testing.assert_array_equal(ours_x0, ours[-1])


def terminal_marginal(seed, n=65536):
  """(noise, data) whose q_sample at the first level is exactly distributed as x_T.

  Schedules without zero terminal SNR keep some signal at the first level, so
  starting from pure noise would bias the statistics; with x_init, strength 1
  starts from the exact marginal.
  """
  k1, k2 = jax.random.split(jax.random.key(seed))
  return jax.random.normal(k1, (n, 4)), MU + STD * jax.random.normal(k2, (n, 4))


def assert_data_distribution(x0, msg):
  # 65536 samples: the standard error of a std estimate is 0.3%.
  np.testing.assert_allclose(np.mean(x0, 0), MU, atol=0.02, err_msg=msg)
  np.testing.assert_allclose(np.std(x0, 0), STD, rtol=0.025, err_msg=msg)


# Karras sigmas put steps where the small-variance data dims change fastest; first-order
# samplers need more steps for a 2.5% agreement than second-order ones.
@pytest.mark.parametrize("config", [
    SamplerConfig("ddpm", 400, spacing="linspace", karras=True),
    SamplerConfig("ddim", 200, spacing="linspace", karras=True),
    SamplerConfig("ddim", 400, spacing="linspace", karras=True, eta=1.0),
    SamplerConfig("euler", 200, spacing="linspace"),
    SamplerConfig("euler", 400, spacing="linspace", s_churn=10.0),
    SamplerConfig("heun", 30, spacing="linspace"),
    SamplerConfig("dpmpp_2m", 25, spacing="linspace", karras=True),
    SamplerConfig("unipc", 20, spacing="linspace", karras=True),
], ids=lambda c: f"{c.name}-{c.num_steps}")
def test_samples_follow_the_data_distribution(config):
  schedule = schedules.DiscreteSchedule(**SD)
  noise, data = terminal_marginal(3)
  levels = discrete_levels(schedule, jnp)
  denoiser = lambda x, t, cond: gaussian_denoiser(x, t, jnp, levels, "epsilon")
  x0 = jax.jit(lambda n, d, k: sample(denoiser, n, config=config, schedule=schedule, x_init=d,
                                      prediction_type="epsilon", key=k))(noise, data, jax.random.key(4))
  assert_data_distribution(x0, config.name)


@pytest.mark.parametrize("prediction_type,schedule", [
    ("v_prediction", schedules.LogSNRSchedule("cosine")),
    ("epsilon", schedules.LogSNRSchedule("linear", -10.0, 10.0)),
    ("flow", schedules.FlowSchedule(shift=3.0)),
], ids=["logsnr_cosine_v", "logsnr_linear_eps", "flow"])
def test_other_schedules_reach_the_data_distribution(prediction_type, schedule):
  if isinstance(schedule, schedules.FlowSchedule):
    levels = flow_levels(schedule, jnp)
  else:
    def levels(t):
      return schedules.alpha_sigma_from_logsnr(schedule.logsnr(t / schedule.time_scale))
  denoiser = lambda x, t, cond: gaussian_denoiser(x, t, jnp, levels, prediction_type)
  noise, data = terminal_marginal(5)
  # Uniform steps in time leave a large last gap in noise level, hence many steps.
  for config in (SamplerConfig("dpmpp_2m", 250), SamplerConfig("unipc", 250), SamplerConfig("ddim", 500)):
    x0 = jax.jit(lambda n, d: sample(denoiser, n, config=config, schedule=schedule, x_init=d,
                                     prediction_type=prediction_type))(noise, data)
    assert_data_distribution(x0, config.name)
