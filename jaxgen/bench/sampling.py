"""The whole sampling loop: 50 DDIM steps with classifier-free guidance, and its compile time.

jaxgen's loop is one compiled program (`jaxgen.diffusion.samplers.sample`: a lax.scan over steps,
both guidance branches in one batched call). The reference is DiTPipeline's denoising loop
(diffusers' DDIMScheduler, guidance on ε), without its final VAE decode.
"""

import dataclasses
import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.bench import flops as flops_lib
from jaxgen.bench import reference as ref_lib
from jaxgen.bench.case import build_jax, build_torch, Case
from jaxgen.bench.measure import timed
from jaxgen.diffusion import schedules
from jaxgen.diffusion.samplers import sample, SamplerConfig


def dit_sampler(model: nn.Module, steps: int, guidance_scale: float):
  """(params, noise [B, H, W, C], labels [B]) -> x_0: the guided DDIM loop as one function."""
  config = model.config
  c = config.in_channels

  def run(params, noise, labels):
    # DiT predicts [ε, learned σ]; DDIM uses ε (as DiTPipeline does).
    denoiser = lambda x, t, y: model.apply({"params": params}, x, t, y)[..., :c]
    null = jnp.full_like(labels, config.null_class)
    return sample(denoiser, noise, labels, negative_cond=null, guidance_scale=guidance_scale,
                  config=SamplerConfig("ddim", steps, spacing="leading"),
                  schedule=schedules.DiscreteSchedule(), prediction_type="epsilon")

  return run


def _reference_loop(transformer: Any, noise: Any, labels: Any, steps: int,
                    guidance_scale: float) -> Any:
  """DiTPipeline.__call__'s denoising loop (DDIM, guidance on ε), returning the latents."""
  import torch
  from diffusers import DDIMScheduler

  scheduler = DDIMScheduler(clip_sample=False)  # DiT's linear betas, "leading" spacing.
  c = transformer.config.in_channels
  null = torch.full_like(labels, transformer.config.num_embeds_ada_norm)
  class_input = torch.cat([labels, null])
  latents = torch.cat([noise, noise])
  scheduler.set_timesteps(steps)
  for t in scheduler.timesteps:
    half = latents[:len(latents) // 2]
    latents = scheduler.scale_model_input(torch.cat([half, half]), t)
    pred = transformer(latents, timestep=t.expand(latents.shape[0]),
                       class_labels=class_input).sample
    eps = pred[:, :c]
    cond, uncond = torch.split(eps, len(eps) // 2)
    half_eps = uncond + guidance_scale * (cond - uncond)
    latents = scheduler.step(torch.cat([half_eps, half_eps]), t, latents).prev_sample
  return latents[:len(latents) // 2]


def sampling_loop(name: str, config: Any, batch: int = 1, steps: int = 50,
                  guidance_scale: float = 4.0, repeats: int = 3, seed: int = 0) -> Case:
  """The guided loop on both sides, and one forward of the doubled batch on both, to measure the
  loop's overhead over steps x one forward."""
  import torch

  pair = ref_lib.load_pair(ref_lib.dit_reference(config), seed=seed)
  s, c = config.sample_size, config.in_channels
  rng = np.random.default_rng(seed)
  noise = rng.standard_normal((batch, s, s, c)).astype(np.float32)
  labels = rng.integers(0, config.num_classes, batch).astype(np.int32)
  jloop, jout, jinfo = build_jax(dit_sampler(pair.model, steps, guidance_scale), pair.params,
                                 noise, labels)
  # One forward as the loop calls it: the doubled batch [cond, null].
  x2 = np.concatenate([noise, noise])
  t2 = np.full((2 * batch,), 500.0, np.float32)
  y2 = np.concatenate([labels, np.full_like(labels, config.null_class)])
  model = pair.model
  jfwd, _, jfwd_info = build_jax(lambda p, x, t, y: model.apply({"params": p}, x, t, y),
                                 pair.params, x2, t2, y2)

  ref = pair.reference
  noise_t = torch.from_numpy(noise).permute(0, 3, 1, 2).contiguous()
  labels_t = torch.from_numpy(labels).long()
  tloop, tout, tinfo = build_torch(
      lambda: _reference_loop(ref, noise_t, labels_t, steps, guidance_scale))
  x2t, t2t, y2t = (torch.from_numpy(x2).permute(0, 3, 1, 2).contiguous(),
                   torch.from_numpy(t2).long(), torch.from_numpy(y2).long())
  tfwd, _, tfwd_info = build_torch(lambda: ref(x2t, timestep=t2t, class_labels=y2t).sample,
                                   measure_memory=False)

  def finish(medians):
    return {f"{side}_overhead": medians[side] / (steps * medians[f"{side}_forward"]) - 1.0
            for side in ("jaxgen", "diffusers")} | {
                f"{side}_forward_median_s": medians[f"{side}_forward"]
                for side in ("jaxgen", "diffusers")}

  return Case(
      name, f"{steps}-step DDIM loop with classifier-free guidance (scale {guidance_scale}), DiT "
      f"{config.num_layers} layers, width {config.hidden_size}, batch {batch} (x2 for guidance), "
      "f32", steps * flops_lib.dit_forward(config, 2 * batch, s, s),
      {"jaxgen": jloop, "diffusers": tloop, "jaxgen_forward": jfwd, "diffusers_forward": tfwd},
      repeats, {"jaxgen": jinfo, "diffusers": tinfo, "jaxgen_forward": jfwd_info,
                "diffusers_forward": tfwd_info},
      ref_lib.rel_err(jout, ref_lib.to_numpy(tout).transpose(0, 2, 3, 1)),
      {"batch": batch, "steps": steps, "guidance_scale": guidance_scale}, finish)


def sampler_compile_seconds(config: Any, batch: int = 1, steps: int = 50) -> dict:
  """Lowering + compile seconds of the guided sampler for `config`, on abstract params.

  No weights are allocated (jax.eval_shape); the persistent compilation cache must be off for the
  figure to mean a cold compile.
  """
  from jaxgen.models import dit

  model = dit.DiT(config)
  s, c = config.sample_size, config.in_channels
  noise = jax.ShapeDtypeStruct((batch, s, s, c), jnp.float32)
  labels = jax.ShapeDtypeStruct((batch,), jnp.int32)
  params = nn.unbox(jax.eval_shape(functools.partial(model.init, jax.random.key(0)),
                                   noise, jax.ShapeDtypeStruct((batch,), jnp.float32),
                                   labels))["params"]
  run = jax.jit(dit_sampler(model, steps, 4.0))
  lowered, lower_s = timed(lambda: run.lower(params, noise, labels))
  _, compile_s = timed(lowered.compile)
  return {"lower_s": lower_s, "compile_s": compile_s, "total_s": lower_s + compile_s}


def sampler_compile(name: str, config: Any, batch: int = 1, steps: int = 50,
                    shallow_layers: int = 2) -> Case:
  """jaxgen-only: compile time of the guided sampler at full depth and at `shallow_layers`."""
  full = sampler_compile_seconds(config, batch, steps)
  shallow = sampler_compile_seconds(dataclasses.replace(config, num_layers=shallow_layers),
                                    batch, steps)
  return Case(
      name, f"compile the {steps}-step guided DDIM sampler of DiT ({config.num_layers} layers, "
      f"width {config.hidden_size}), batch {batch}; jaxgen only (the reference runs eagerly)",
      None, {}, 0, {"jaxgen": {"compile_s": full["total_s"], "lower_s": full["lower_s"],
                               "xla_compile_s": full["compile_s"]}},
      extra={"num_layers": config.num_layers, "shallow_layers": shallow_layers,
             "shallow_compile_s": shallow["total_s"],
             "depth_ratio": full["total_s"] / shallow["total_s"]})
