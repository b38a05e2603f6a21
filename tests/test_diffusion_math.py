"""Schedules, parameterizations and losses against the references and closed forms."""

import diffusers
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.diffusion import losses, parameterization, schedules


@pytest.mark.parametrize("ours,theirs", [
    ({}, {}),
    ({"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012},
     {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012}),
    ({"beta_schedule": "cosine"}, {"beta_schedule": "squaredcos_cap_v2"}),
    ({"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012,
      "rescale_zero_terminal_snr": True},
     {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012,
      "rescale_betas_zero_snr": True}),
])
def test_alphas_cumprod_match_diffusers(ours, theirs):
  expected = diffusers.DDPMScheduler(**theirs).alphas_cumprod.numpy()
  np.testing.assert_allclose(schedules.DiscreteSchedule(**ours).alphas_cumprod(), expected,
                             rtol=2e-5, atol=1e-7)


def test_zero_terminal_snr_ends_in_pure_noise():
  alpha_bar = schedules.DiscreteSchedule(beta_schedule="scaled_linear", beta_start=0.00085,
                                         beta_end=0.012, rescale_zero_terminal_snr=True).alphas_cumprod()
  assert alpha_bar[-1] == 0.0
  assert np.all(np.diff(alpha_bar) < 0)


@pytest.mark.parametrize("spacing", ["leading", "trailing"])
@pytest.mark.parametrize("num_steps", [7, 20, 50])
def test_spacings_match_diffusers(spacing, num_steps):
  scheduler = diffusers.DDIMScheduler(timestep_spacing=spacing, steps_offset=1 if spacing == "leading" else 0)
  scheduler.set_timesteps(num_steps)
  ours = schedules.spaced_timesteps(1000, num_steps, spacing, scheduler.config.steps_offset)
  np.testing.assert_array_equal(ours, scheduler.timesteps.numpy())


def test_linspace_spacing_matches_diffusers_euler():
  scheduler = diffusers.EulerDiscreteScheduler(timestep_spacing="linspace")
  scheduler.set_timesteps(13)
  np.testing.assert_allclose(schedules.spaced_timesteps(1000, 13, "linspace"), scheduler.timesteps.numpy(),
                             rtol=1e-6)


def test_karras_sigmas_endpoints_and_rho():
  sigmas = schedules.karras_sigmas(0.03, 14.6, 10)
  np.testing.assert_allclose([sigmas[0], sigmas[-1]], [14.6, 0.03])
  np.testing.assert_allclose(np.diff(sigmas ** (1 / 7)), np.diff(sigmas ** (1 / 7))[0])


def test_flow_shift():
  s = np.linspace(0.01, 0.99, 9)
  np.testing.assert_allclose(schedules.shift_sigmas(s, 1.0), s)
  np.testing.assert_allclose(schedules.shift_sigmas(0.5, 3.0), 0.75)
  # The dynamic shift is the static one with k = e^mu.
  np.testing.assert_allclose(schedules.time_shift_exponential(s, np.log(3.0)), schedules.shift_sigmas(s, 3.0))
  assert schedules.dynamic_shift_mu(256) == pytest.approx(0.5)
  assert schedules.dynamic_shift_mu(4096) == pytest.approx(1.15)
  for schedule in (schedules.FlowSchedule(shift=3.0), schedules.FlowSchedule(dynamic_shift_mu=0.7)):
    np.testing.assert_allclose(schedule.unshifted(schedule.shifted(s)), s, rtol=1e-6)


@pytest.mark.parametrize("schedule", [schedules.LogSNRSchedule("cosine"),
                                      schedules.LogSNRSchedule("linear", -12.0, 8.0)])
def test_logsnr_schedules(schedule):
  u = np.linspace(0.0, 1.0, 11)
  logsnr = schedule.logsnr(u)
  np.testing.assert_allclose([logsnr[0], logsnr[-1]], [schedule.logsnr_max, schedule.logsnr_min], atol=1e-6)
  assert np.all(np.diff(logsnr) < 0)
  _, alpha, sigma = schedule.at_times(u)
  np.testing.assert_allclose(alpha**2 + sigma**2, 1.0, rtol=1e-12)
  np.testing.assert_allclose(np.log(alpha**2 / sigma**2), logsnr, atol=1e-6)
  # The float32 JAX path (used in training) agrees with NumPy's, up to tan's conditioning near pi/2.
  np.testing.assert_allclose(schedule.logsnr(jnp.asarray(u, jnp.float32)), logsnr, rtol=1e-4, atol=2e-3)


@pytest.mark.parametrize("prediction_type", parameterization.PREDICTION_TYPES)
@pytest.mark.parametrize("path", ["vp", "flow"])
def test_predictions_convert_exactly(prediction_type, path):
  k1, k2 = jax.random.split(jax.random.key(0))
  x0 = jax.random.normal(k1, (5, 3, 4))
  eps = jax.random.normal(k2, (5, 3, 4))
  if path == "vp":
    alpha = jnp.linspace(0.1, 0.99, 5)
    sigma = jnp.sqrt(1 - alpha**2)
  else:
    sigma = jnp.linspace(0.05, 0.95, 5)
    alpha = 1 - sigma
  x = parameterization.q_sample(x0, eps, alpha, sigma)
  target = parameterization.from_x0_eps(x0, eps, alpha, sigma, prediction_type)
  x0_back, eps_back = parameterization.to_x0_eps(target, x, alpha, sigma, prediction_type)
  np.testing.assert_allclose(x0_back, x0, atol=2e-5)
  np.testing.assert_allclose(eps_back, eps, atol=2e-5)


def test_v_prediction_matches_diffusers_velocity():
  scheduler = diffusers.DDPMScheduler()
  x0, eps = np.random.RandomState(0).randn(2, 4, 3).astype(np.float32)
  t = np.array([10, 400, 800, 999])
  import torch  # pylint: disable=g-import-not-at-top
  expected = scheduler.get_velocity(torch.from_numpy(x0), torch.from_numpy(eps), torch.from_numpy(t)).numpy()
  _, alpha, sigma = schedules.DiscreteSchedule().at_timesteps(t)
  ours = parameterization.from_x0_eps(jnp.asarray(x0), jnp.asarray(eps), alpha, sigma, "v_prediction")
  np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)


def test_min_snr_weights_closed_forms():
  alpha = jnp.array([0.2, 0.6, 0.9, 0.99])
  sigma = jnp.sqrt(1 - alpha**2)
  snr = alpha**2 / sigma**2
  gamma = 5.0
  expected = {"epsilon": jnp.minimum(snr, gamma) / snr, "v_prediction": jnp.minimum(snr, gamma) / (snr + 1),
              "sample": jnp.minimum(snr, gamma)}
  for prediction_type, weight in expected.items():
    np.testing.assert_allclose(losses.loss_weight(alpha, sigma, prediction_type, "min_snr", gamma), weight,
                               rtol=1e-5)
  np.testing.assert_array_equal(losses.loss_weight(alpha, sigma, "epsilon"), 1.0)


def test_loss_is_zero_at_the_target_and_respects_masks():
  k1, k2 = jax.random.split(jax.random.key(1))
  x0 = jax.random.normal(k1, (2, 4, 3))
  eps = jax.random.normal(k2, (2, 4, 3))
  alpha, sigma = jnp.array([0.5, 0.8]), jnp.array([0.5, 0.2])
  target = parameterization.from_x0_eps(x0, eps, alpha, sigma, "flow")
  np.testing.assert_allclose(losses.diffusion_loss(target, x0, eps, alpha, sigma, "flow"), 0.0)
  # Errors only where the mask is 0 do not count.
  mask = jnp.array([1.0, 1.0, 0.0, 0.0])[None, :, None]
  wrong = target.at[:, 2:].add(3.0)
  np.testing.assert_allclose(losses.diffusion_loss(wrong, x0, eps, alpha, sigma, "flow", mask=mask), 0.0)
  assert np.all(losses.diffusion_loss(wrong, x0, eps, alpha, sigma, "flow") > 0)


@pytest.mark.parametrize("schedule", [schedules.DiscreteSchedule(), schedules.LogSNRSchedule(),
                                      schedules.FlowSchedule(shift=3.0)])
def test_training_noise_levels_lie_on_the_schedule(schedule):
  t, alpha, sigma = losses.sample_noise_level(schedule, jax.random.key(2), 256)
  assert t.shape == alpha.shape == sigma.shape == (256,)
  if isinstance(schedule, schedules.FlowSchedule):
    np.testing.assert_allclose(alpha + sigma, 1.0, rtol=1e-6)
  else:
    np.testing.assert_allclose(alpha**2 + sigma**2, 1.0, rtol=1e-5)
  assert float(jnp.min(sigma)) >= 0 and float(jnp.max(sigma)) <= 1


@pytest.mark.parametrize("logit_normal", [None, (0.0, 1.0)])
def test_noise_levels_in_an_interval_follow_the_full_distribution(logit_normal):
  """A noise-level expert's levels: those of the whole schedule that fall in its interval."""
  schedule = schedules.FlowSchedule(shift=3.0)
  level = lambda key, n, **kw: np.asarray(
      losses.sample_noise_level(schedule, jax.random.key(key), n, logit_normal=logit_normal, **kw)[2])
  full = level(0, 200_000)
  for lo, hi in ((0.8, 1.0), (0.0, 0.8)):
    part = level(1, 20_000, interval=(lo, hi))
    assert part.min() >= lo - 1e-6 and part.max() <= hi + 1e-6
    expected = full[(full >= lo) & (full <= hi)]
    np.testing.assert_allclose(np.quantile(part, [0.1, 0.5, 0.9]),
                               np.quantile(expected, [0.1, 0.5, 0.9]), atol=0.01)
  with pytest.raises(ValueError, match=r"interval=\(0.9, 0.8\)"):
    level(0, 4, interval=(0.9, 0.8))
  with pytest.raises(ValueError, match="FlowSchedule only"):
    losses.sample_noise_level(schedules.DiscreteSchedule(), jax.random.key(0), 4, interval=(0.5, 1.0))


def test_schedule_errors_name_the_argument():
  with pytest.raises(ValueError, match="beta_schedule='cosinus'"):
    schedules.DiscreteSchedule(beta_schedule="cosinus")
  with pytest.raises(ValueError, match="shift=0"):
    schedules.FlowSchedule(shift=0)
  with pytest.raises(ValueError, match="shift=-1.0"):
    schedules.shift_sigmas(0.5, -1.0)
  with pytest.raises(ValueError, match="spacing='middle'"):
    schedules.spaced_timesteps(1000, 10, "middle")
  with pytest.raises(ValueError, match="kind='sigmoid'"):
    schedules.LogSNRSchedule("sigmoid")
  with pytest.raises(ValueError, match="prediction_type='noise'"):
    parameterization.to_x0_eps(jnp.zeros(2), jnp.zeros(2), 1.0, 1.0, "noise")
  with pytest.raises(ValueError, match="weighting='p2'"):
    losses.loss_weight(jnp.ones(2), jnp.ones(2), "epsilon", "p2")
