"""Per-device memory of a train step or a sampling loop, from ahead-of-time compilation.

Nothing is allocated: the train state and batch are ShapeDtypeStructs carrying their shardings, the
step is `.lower(...).compile()`d for the mesh, and XLA's buffer assignment says what each device
needs (`compiled.memory_analysis()`). Beside it, the closed-form arithmetic: params, gradients and
Adam moments in float32 are 16 bytes per parameter, split over the shards of each tensor; with
full remat the backward pass keeps one [B, L, D] layer input per layer.
"""

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import Mesh
import optax

from jaxgen.diffusion import schedules
from jaxgen.diffusion.samplers import SamplerConfig
from jaxgen.parallel import checks, sharding as sh, steps
from jaxgen.parallel.rules import Rules

GB = 1e9
MODES = ("train", "sample")


@dataclasses.dataclass(frozen=True)
class MemoryReport:
  """Per-device bytes of one compiled program (sizes from XLA's buffer assignment)."""

  mode: str
  mesh: dict[str, int]
  platform: str
  num_params: int
  batch_size: int
  latent_shape: tuple[int, ...]  # (t, h, w, C)
  tokens: int  # Per video, after patching.
  argument_bytes: int  # Inputs living on the device: state (or params), batch.
  output_bytes: int
  alias_bytes: int  # Outputs written in place of donated inputs (counted once).
  temp_bytes: int  # Activations, gathered params, gradients in flight, workspace.
  state_bytes: int  # Closed form: this device's share of params (+ grads and Adam when training).
  saved_activation_bytes: int  # Closed form: layer inputs kept for the backward pass (full remat).

  @property
  def peak_bytes(self) -> int:
    """Arguments + outputs not aliased to them + temporaries: what the device must hold at once."""
    return self.argument_bytes + self.output_bytes - self.alias_bytes + self.temp_bytes

  def fits(self, device_bytes: float, headroom: float = 0.9) -> bool:
    """Whether the peak fits in headroom × device_bytes (the rest: runtime, fragmentation)."""
    return self.peak_bytes <= headroom * device_bytes

  def format(self, device_bytes: float | None = None) -> str:
    """A short human-readable table."""
    g = lambda b: f"{b / GB:8.2f} GB"
    mesh = " × ".join(f"{k}={v}" for k, v in self.mesh.items() if v > 1) or "1 device"
    lines = [
        f"{self.mode}: {self.num_params / 1e9:.2f} B params, batch {self.batch_size}, latents "
        f"{'×'.join(map(str, self.latent_shape))} = {self.tokens} tokens/video, mesh {mesh} "
        f"({self.platform})",
        f"  arguments (state, batch)   {g(self.argument_bytes)}",
        f"  outputs not donated        {g(self.output_bytes - self.alias_bytes)}",
        f"  temporaries                {g(self.temp_bytes)}",
        f"  peak per device            {g(self.peak_bytes)}",
        f"  closed form: state {g(self.state_bytes).strip()}, saved layer inputs "
        f"{g(self.saved_activation_bytes).strip()}",
    ]
    if device_bytes:
      verdict = "fits" if self.fits(device_bytes) else "does NOT fit"
      lines.append(f"  {verdict} in 90% of {device_bytes / GB:.0f} GB per device")
    return "\n".join(lines)


def _per_device(structs: Any) -> int:
  """Bytes one device holds of a tree of sharded ShapeDtypeStructs (the largest share)."""
  total = 0
  for leaf in jax.tree.leaves(structs):
    shards = sh.shard_count(leaf.sharding, len(leaf.shape))
    total += math.prod(leaf.shape) * jnp.dtype(leaf.dtype).itemsize // shards
  return total


def analyze(model: Any, config: Any, mesh: Mesh, rules: Rules, *, batch_size: int,
            latent_shape: tuple[int, int, int, int], text_len: int, mode: str = "train",
            num_steps: int = 50, guided: bool = True,
            compiler_options: dict[str, Any] | None = None) -> MemoryReport:
  """Compiles model's train step (AdamW) or guided sampling loop for mesh; returns its memory.

  model: a Linen DiT called as (x, t, context, mask); config: its config (patch_size, num_heads,
  hidden_size, num_layers, dtype, text_dim, remat_policy). Nothing is allocated on any device.
  """
  if mode not in MODES:
    raise ValueError(f"mode={mode!r}; expected one of {MODES}")
  checks.check_model(config, mesh, rules)
  checks.check_batch(batch_size, mesh, rules)
  t, h, w, c = latent_shape
  pt, ph, pw = config.patch_size
  if t % pt or h % ph or w % pw:
    raise ValueError(f"latent_shape={latent_shape}; (t, h, w) must be multiples of the patch size "
                     f"{config.patch_size}")
  tokens = (t // pt) * (h // ph) * (w // pw)
  if config.attention_impl in ("ring", "ulysses"):
    checks.check_tokens(tokens, mesh, rules)
  example = (jnp.zeros((1, pt, ph, pw, c)), jnp.zeros((1,)), jnp.zeros((1, 1, config.text_dim)))
  tx = optax.adamw(1e-4)
  state, state_sh = steps.abstract_train_state(model, tx, mesh, rules, example)
  num_params = sum(math.prod(x.shape) for x in jax.tree.leaves(state.params))
  batch = {"latents": jax.ShapeDtypeStruct((batch_size,) + tuple(latent_shape), jnp.float32),
           "context": jax.ShapeDtypeStruct((batch_size, text_len, config.text_dim), jnp.float32)}
  batch_sh = sh.batch_shardings(batch, mesh, rules)
  batch = {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=batch_sh[k])
           for k, v in batch.items()}
  key = jax.ShapeDtypeStruct((), jax.random.key(0).dtype, sharding=sh.replicated(mesh))
  schedule = schedules.FlowSchedule()
  if mode == "train":
    step = steps.train_step_fn(steps.diffusion_loss_fn(model, schedule, "flow"), tx)
    compiled = steps.shard_train_step(step, mesh, rules, state_sh, batch_sh,
                                      compiler_options).lower(state, batch, key).compile()
    state_bytes = _per_device(state.params) * 2 + _per_device(state.opt_state)  # + gradients
  else:
    cond = {"context": batch["context"]}
    fn = steps.sample_fn(model, SamplerConfig("flow_euler", num_steps), schedule, "flow")
    sampler = steps.shard_sample(fn, mesh, rules, state_sh.params, cond, guided, compiler_options)
    scale = jax.ShapeDtypeStruct((), jnp.float32, sharding=sh.replicated(mesh))
    compiled = sampler.lower(state.params, batch["latents"], cond, cond if guided else None, key,
                             scale).compile()
    state_bytes = _per_device(state.params)
  stats = compiled.memory_analysis()
  batch_shards = checks.shards_of(mesh, rules, "batch")[1]
  token_shards = checks.shards_of(mesh, rules, "length")[1]
  saved = 0
  if mode == "train" and config.remat_policy != "none":
    saved = (config.num_layers * (batch_size // batch_shards) * (tokens // token_shards)
             * config.hidden_size * jnp.dtype(config.dtype).itemsize)
  return MemoryReport(
      mode=mode, mesh=dict(mesh.shape), platform=mesh.devices.flat[0].platform,
      num_params=num_params, batch_size=batch_size, latent_shape=tuple(latent_shape),
      tokens=tokens, argument_bytes=int(stats.argument_size_in_bytes),
      output_bytes=int(stats.output_size_in_bytes), alias_bytes=int(stats.alias_size_in_bytes),
      temp_bytes=int(stats.temp_size_in_bytes), state_bytes=int(state_bytes),
      saved_activation_bytes=int(saved))


def latent_shape_for(frames: int, height: int, width: int, channels: int = 16,
                     temporal: int = 4, spatial: int = 8) -> tuple[int, int, int, int]:
  """Video size -> Wan VAE latent (t, h, w, C): causal 4× in time ((F - 1)/4 + 1), 8× in space."""
  if (frames - 1) % temporal or height % spatial or width % spatial:
    raise ValueError(f"video {frames}×{height}×{width}: expected frames = 1 + {temporal}·k and "
                     f"height, width multiples of {spatial} (e.g. 81×480×832)")
  return ((frames - 1) // temporal + 1, height // spatial, width // spatial, channels)


def parse_bytes(text: str) -> float:
  """"80GB", "80G", "141 GB", "24GiB" -> bytes."""
  units = {"": 1, "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12, "k": 1e3, "m": 1e6,
           "g": 1e9, "t": 1e12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
  s = str(text).strip().lower().replace(" ", "")
  number = s.rstrip("abcdefghijklmnopqrstuvwxyz")
  unit = s[len(number):]
  if unit not in units or not number:
    raise ValueError(f"device memory {text!r}; expected a size like '80GB' or '24GiB'")
  return float(number) * units[unit]
