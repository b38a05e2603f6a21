"""A sharded diffusion train step and a sharded sampling loop for text-conditioned DiTs.

The model is called as model.apply({"params": p}, x, t, context, context_mask) (Wan, PixArt-style
video/image DiTs). Batches are dicts: "latents" [B, ...], "context" [B, S, D_text] and optionally
"context_mask" [B, S]. Both programs are jitted once with in/out shardings; per-device code (ring
attention) enters through the models' attention implementation.
"""

from collections.abc import Callable
import functools
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.sharding import Mesh
import optax

from jaxgen.diffusion import losses
from jaxgen.diffusion import parameterization as param
from jaxgen.diffusion.samplers import sample, SamplerConfig
from jaxgen.parallel import sharding as sh
from jaxgen.parallel.rules import Rules


@flax.struct.dataclass
class TrainState:
  """step: [] int32; params and opt_state: trees whose leaves carry their shardings."""

  step: jax.Array
  params: Any
  opt_state: Any


def init_train_state(model: nn.Module, tx: optax.GradientTransformation, mesh: Mesh, rules: Rules,
                     example: tuple[Any, ...], key: jax.Array) -> tuple[TrainState, TrainState]:
  """(state, shardings): params from model.init(key, *example) and tx's state, born sharded.

  optax maps over the params' logical boxes, so its moments inherit the params' shardings.
  """
  return sh.init_sharded(functools.partial(_init_state, model, tx), mesh, rules, key, *example)


def abstract_train_state(model: nn.Module, tx: optax.GradientTransformation, mesh: Mesh,
                         rules: Rules, example: tuple[Any, ...]) -> tuple[TrainState, TrainState]:
  """(ShapeDtypeStructs with shardings, shardings) of the train state; allocates nothing."""
  key = jax.ShapeDtypeStruct((), jax.random.key(0).dtype)
  return sh.abstract_sharded(functools.partial(_init_state, model, tx), mesh, rules, key, *example)


def _init_state(model, tx, key, *example):
  params = model.init(key, *example)["params"]
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))


def diffusion_loss_fn(model: nn.Module, schedule: Any, prediction_type: str,
                      weighting: str = "uniform") -> Callable[..., jax.Array]:
  """loss(params, batch, key) -> []: the denoising loss on a noised batch["latents"]."""

  def loss(params, batch, key):
    x0 = batch["latents"].astype(jnp.float32)
    k_level, k_noise = jax.random.split(key)
    t, alpha, sigma = losses.sample_noise_level(schedule, k_level, x0.shape[0])
    eps = jax.random.normal(k_noise, x0.shape, jnp.float32)
    x_t = param.q_sample(x0, eps, alpha, sigma)
    prediction = model.apply({"params": params}, x_t, t, batch["context"],
                             batch.get("context_mask"))
    return jnp.mean(losses.diffusion_loss(prediction, x0, eps, alpha, sigma, prediction_type,
                                          weighting=weighting))

  return loss


def train_step_fn(loss_fn: Callable[..., jax.Array],
                  tx: optax.GradientTransformation) -> Callable[..., Any]:
  """step(state, batch, key) -> (state, {"loss", "grad_norm"}); the key is folded with the step."""

  def step(state: TrainState, batch: dict, key: jax.Array):
    key = jax.random.fold_in(key, state.step)
    loss, grads = jax.value_and_grad(loss_fn)(state.params, batch, key)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    grad_norm = jnp.sqrt(sum(jnp.sum(jnp.square(g)) for g in jax.tree.leaves(grads)))
    metrics = {"loss": loss, "grad_norm": grad_norm}
    return TrainState(step=state.step + 1, params=params, opt_state=opt_state), metrics

  return step


def shard_train_step(step: Callable[..., Any], mesh: Mesh, rules: Rules,
                     state_shardings: TrainState, batch_shardings: dict,
                     compiler_options: dict[str, Any] | None = None) -> sh.Sharded:
  """jit(step): the state stays on its shardings (donated: updated in place), the batch is split."""
  rep = sh.replicated(mesh)
  return sh.Sharded(step, mesh, rules, in_shardings=(state_shardings, batch_shardings, rep),
                    out_shardings=(state_shardings, rep), donate_argnums=0,
                    compiler_options=compiler_options)


def sample_fn(model: nn.Module, config: SamplerConfig, schedule: Any,
              prediction_type: str) -> Callable[..., jax.Array]:
  """fn(params, noise [B, ...], cond, negative_cond, key, guidance_scale) -> x_0 [B, ...].

  cond / negative_cond: {"context": [B, S, D], "context_mask": [B, S] or absent}; with
  negative_cond None the loop runs unguided. All steps are one lax.scan.
  """

  def denoiser(params, x, t, c):
    return model.apply({"params": params}, x, t, c["context"], c.get("context_mask"))

  def fn(params, noise, cond, negative_cond, key, guidance_scale):
    return sample(functools.partial(denoiser, params), noise, cond, config=config,
                  schedule=schedule, prediction_type=prediction_type, key=key,
                  guidance_scale=guidance_scale, negative_cond=negative_cond)

  return fn


def shard_sample(fn: Callable[..., jax.Array], mesh: Mesh, rules: Rules, param_shardings: Any,
                 cond: dict, guided: bool,
                 compiler_options: dict[str, Any] | None = None) -> sh.Sharded:
  """jit(fn) of sample_fn with params on their shardings and noise, conditions, output split by
  batch."""
  rep = sh.replicated(mesh)
  x = sh.logical_sharding(("batch",), mesh, rules)
  cond_sh = sh.batch_shardings(cond, mesh, rules)
  negative_sh = cond_sh if guided else None
  return sh.Sharded(fn, mesh, rules,
                    in_shardings=(param_shardings, x, cond_sh, negative_sh, rep, rep),
                    out_shardings=x, compiler_options=compiler_options)
