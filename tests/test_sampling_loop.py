"""The sampling loop: one compiled program, guidance in one batched call, SDEdit, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.diffusion import guidance, schedules
from jaxgen.diffusion.samplers import SAMPLERS, SamplerConfig, make_plan, sample

SCHEDULE = schedules.DiscreteSchedule()
FLOW = schedules.FlowSchedule(shift=2.0)


def toy_denoiser(x, t, cond):
  """A smooth, conditioning-dependent stand-in for a network: [B, D] -> [B, D]."""
  scale = 1.0 if cond is None else cond[:, None]
  return jnp.tanh(x * scale + t[:, None] / 1000.0)


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_whole_loop_is_one_program(name):
  traces = []

  def denoiser(x, t, cond):
    traces.append(x.shape)
    return toy_denoiser(x, t, cond)

  schedule = FLOW if name == "flow_euler" else SCHEDULE
  config = SamplerConfig(name, 30)
  fn = jax.jit(lambda n, k: sample(denoiser, n, config=config, schedule=schedule,
                                   prediction_type="flow" if name == "flow_euler" else "epsilon", key=k))
  noise = jax.device_put(jnp.ones((2, 3)))
  key = jax.device_put(jax.random.key(0))
  lowered = fn.lower(noise, key)
  # 30 steps, yet the step (and its network calls) is traced once: the loop is in the program.
  assert len(traces) == SAMPLERS[name].evals_per_step
  assert "stablehlo.while" in lowered.as_text()
  compiled = lowered.compile()
  with jax.transfer_guard("disallow"):  # no host round trip inside the loop
    out = compiled(noise, key)
  assert out.shape == (2, 3) and bool(jnp.all(jnp.isfinite(out)))


def test_guidance_runs_both_branches_in_one_call():
  batches = []

  def denoiser(x, t, cond):
    batches.append(x.shape[0])
    return toy_denoiser(x, t, cond)

  cond, negative = jnp.array([2.0, 3.0]), jnp.array([0.5, 0.5])
  jax.jit(lambda n: sample(denoiser, n, cond, config=SamplerConfig("ddim", 10), schedule=SCHEDULE,
                           prediction_type="epsilon", guidance_scale=4.0, negative_cond=negative))(
                               jnp.ones((2, 3)))
  assert batches == [4]


def test_guidance_formula_and_rescale():
  x, t = jnp.ones((2, 5)), jnp.full((2,), 500.0)
  cond, negative = jnp.array([2.0, -1.0]), jnp.array([0.5, 0.25])
  pos, neg = toy_denoiser(x, t, cond), toy_denoiser(x, t, negative)
  model = guidance.guided(toy_denoiser, cond, negative)
  np.testing.assert_allclose(model(x, t, 7.5), neg + 7.5 * (pos - neg), rtol=1e-6)
  np.testing.assert_allclose(model(x, t, 1.0), pos, rtol=1e-6)
  # Rescale with phi = 1 matches the conditional branch's per-example std (Lin et al. 2024).
  rescaled = guidance.guided(toy_denoiser, cond, negative, guidance_rescale=1.0)(x + jnp.arange(5.0), t, 7.5)
  np.testing.assert_allclose(jnp.std(rescaled, axis=1),
                             jnp.std(toy_denoiser(x + jnp.arange(5.0), t, cond), axis=1), rtol=1e-5)


def test_per_step_guidance_weights():
  weights = guidance.oscillating(10, high=12.0, low=1.0, num_oscillating=6)
  np.testing.assert_array_equal(weights, [12, 1, 12, 1, 12, 1, 1, 1, 1, 1])
  run = lambda w: sample(toy_denoiser, jnp.ones((2, 3)), jnp.array([2.0, 3.0]), config=SamplerConfig("ddim", 10),
                         schedule=SCHEDULE, prediction_type="epsilon", guidance_scale=w,
                         negative_cond=jnp.array([0.0, 0.0]))
  np.testing.assert_allclose(run(jnp.full((10,), 3.0)), run(3.0), rtol=1e-6)
  assert not np.allclose(run(weights), run(3.0))


def test_sdedit_strength():
  x_init = jnp.full((2, 3), 0.5)
  noise = jax.random.normal(jax.random.key(0), (2, 3))
  run = lambda s: sample(toy_denoiser, noise, config=SamplerConfig("ddim", 20, strength=s), schedule=SCHEDULE,
                         prediction_type="epsilon", x_init=x_init)
  assert make_plan(SamplerConfig("ddim", 20, strength=0.3), SCHEDULE).num_steps == 6
  np.testing.assert_array_equal(run(0.0), x_init)  # no steps: the input is returned
  # A partial strength starts from the input noised to the level of its first step.
  plan = make_plan(SamplerConfig("ddim", 20, strength=0.3), SCHEDULE)
  assert float(plan.t[0]) == schedules.spaced_timesteps(1000, 20, "trailing")[14]
  assert np.linalg.norm(run(0.3) - x_init) < np.linalg.norm(run(1.0) - x_init)


def test_same_seed_same_output():
  config = SamplerConfig("ddpm", 15)
  run = lambda seed: sample(toy_denoiser, jnp.ones((2, 3)), config=config, schedule=SCHEDULE,
                            prediction_type="epsilon", key=jax.random.key(seed))
  np.testing.assert_array_equal(run(1), run(1))
  assert not np.allclose(run(1), run(2))


@pytest.mark.parametrize("kwargs,match", [
    (dict(config=dict(name="plms")), "sampler='plms'"),
    (dict(config=dict(num_steps=0)), "num_steps=0"),
    (dict(config=dict(num_steps=-3)), "num_steps=-3"),
    (dict(config=dict(strength=1.5)), "strength=1.5"),
    (dict(config=dict(strength=-0.1)), "strength=-0.1"),
    (dict(config=dict(spacing="uniform")), "spacing='uniform'"),
    (dict(config=dict(eta=-1.0)), "eta=-1.0"),
    (dict(config=dict(name="ddim", s_churn=1.0)), "s_churn=1.0"),
    (dict(prediction_type="score"), "prediction_type='score'"),
    (dict(x_init=jnp.zeros((2, 4))), r"x_init has shape \(2, 4\)"),
    (dict(config=dict(strength=0.5)), "strength=0.5 needs x_init"),
    (dict(negative_cond=jnp.zeros(3)), r"negative_cond has a leaf of shape \(3,\)"),
    (dict(negative_cond=jnp.zeros(2), guidance_scale=jnp.ones(7)), r"guidance_scale has shape \(7,\)"),
    (dict(config=dict(name="ddpm"), key=None), "key=None"),
    (dict(config=dict(name="euler"), schedule=FLOW), "schedule=FlowSchedule is not supported by sampler='euler'"),
    (dict(config=dict(name="flow_euler")), "schedule=DiscreteSchedule is not supported by sampler='flow_euler'"),
])
def test_bad_arguments_raise_clear_errors(kwargs, match):
  args = dict(config=dict(name="ddim", num_steps=10), schedule=SCHEDULE, prediction_type="epsilon",
              key=jax.random.key(0))
  args.update(kwargs)
  with pytest.raises(ValueError, match=match):
    config = SamplerConfig(**{**dict(name="ddim", num_steps=10), **args.pop("config")})
    jax.jit(lambda n: sample(toy_denoiser, n, jnp.ones(2), config=config, **args))(jnp.zeros((2, 3)))
