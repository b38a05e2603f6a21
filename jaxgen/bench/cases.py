"""Forward cases: DiT, the Wan video DiT and the Wan VAE decode, jaxgen against diffusers."""

import dataclasses
from typing import Any

import jax
import numpy as np

from jaxgen.bench import flops as flops_lib
from jaxgen.bench import reference as ref_lib
from jaxgen.bench.case import build_jax, build_torch, Case
from jaxgen.bench.measure import jax_memory, torch_peak_bytes


def dit_forward(name: str, config: Any, batch: int = 8, repeats: int = 5, seed: int = 0) -> Case:
  """One DiT forward on [batch, s, s, C] latents (s = config.sample_size), f32."""
  import torch

  pair = ref_lib.load_pair(ref_lib.dit_reference(config), seed=seed)
  s, c = config.sample_size, config.in_channels
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((batch, s, s, c)).astype(np.float32)
  t = rng.integers(0, 1000, batch).astype(np.float32)
  y = rng.integers(0, config.num_classes, batch).astype(np.int32)
  model = pair.model
  jcall, jout, jinfo = build_jax(lambda p, x, t, y: model.apply({"params": p}, x, t, y),
                                 pair.params, x, t, y)
  xt, tt, yt = (torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(t),
                torch.from_numpy(y).long())
  tcall, tout, tinfo = build_torch(
      lambda: pair.reference(xt, timestep=tt, class_labels=yt).sample)
  tokens = (s // config.patch_size)**2
  return Case(
      name, f"DiT forward, {config.num_layers} layers, width {config.hidden_size}, batch {batch} "
      f"x {tokens} tokens, f32", flops_lib.dit_forward(config, batch, s, s),
      {"jaxgen": jcall, "diffusers": tcall}, repeats, {"jaxgen": jinfo, "diffusers": tinfo},
      ref_lib.rel_err(jout, ref_lib.to_numpy(tout).transpose(0, 2, 3, 1)),
      {"batch": batch, "tokens": tokens})


def wan_inputs(config: Any, batch: int, grid: tuple[int, int, int], text_len: int, seed: int):
  """Latents [B, T, H, W, C] for a token grid, timesteps [B], text context [B, S, text_dim]."""
  rng = np.random.default_rng(seed)
  shape = tuple(g * p for g, p in zip(grid, config.patch_size))
  x = rng.standard_normal((batch,) + shape + (config.in_channels,)).astype(np.float32)
  t = rng.integers(0, 1000, batch).astype(np.float32)
  context = rng.standard_normal((batch, text_len, config.text_dim)).astype(np.float32)
  return x, t, context


def wan_forward(name: str, config: Any, grid: tuple[int, int, int], text_len: int = 512,
                batch: int = 1, repeats: int = 3, seed: int = 0, dtype: str = "float32",
                device: str = "cpu", attention_impl: str | None = None) -> Case:
  """One Wan forward on a (frames, height, width) token grid with text_len context tokens.

  With dtype="bfloat16" both sides hold bf16 weights (the reference's usual inference setting)
  and compute in bf16; jaxgen keeps norms, softmax and modulation in f32.
  """
  import torch

  params_dtype = None if dtype == "float32" else dtype
  pair = ref_lib.load_pair(ref_lib.wan_reference(config), dtype=dtype, device=device,
                           params_dtype=params_dtype, seed=seed,
                           overrides={"attention_impl": attention_impl})
  x, t, context = wan_inputs(pair.config, batch, grid, text_len, seed)
  model = pair.model
  jcall, jout, jinfo = build_jax(lambda p, x, t, c: model.apply({"params": p}, x, t, c),
                                 pair.params, x, t, context)
  torch_dtype = getattr(torch, dtype)
  xt = torch.from_numpy(x).permute(0, 4, 1, 2, 3).contiguous().to(device, torch_dtype)
  tt = torch.from_numpy(t).to(device)
  ct = torch.from_numpy(context).to(device, torch_dtype)
  tcall, tout, tinfo = build_torch(
      lambda: pair.reference(xt, timestep=tt, encoder_hidden_states=ct).sample, device)
  c = pair.config
  tokens = int(np.prod(grid))
  return Case(
      name, f"Wan video DiT forward, {c.num_layers} layers, width {c.hidden_size}, "
      f"{'x'.join(map(str, grid))} = {tokens} tokens, batch {batch}, {text_len} text tokens, "
      f"{dtype}", flops_lib.wan_forward(c, batch, *x.shape[1:4], text_len),
      {"jaxgen": jcall, "diffusers": tcall}, repeats, {"jaxgen": jinfo, "diffusers": tinfo},
      ref_lib.rel_err(jout, ref_lib.to_numpy(tout).transpose(0, 2, 3, 4, 1)),
      {"batch": batch, "tokens": tokens, "grid": list(grid), "text_len": text_len,
       "dtype": dtype, "attention_impl": attention_impl or "auto"})


def _latents(config: Any, frames: int, size: int, seed: int) -> np.ndarray:
  """Latents [1, 1 + (frames - 1)/4, size/8, size/8, z] of a `frames`-frame video."""
  rng = np.random.default_rng(seed)
  t = 1 + (frames - 1) // config.temporal_factor
  h = size // config.spatial_factor
  return rng.standard_normal((1, t, h, h, config.z_dim)).astype(np.float32)


def vae_decode(name: str, config: Any, frames: int = 17, size: int = 64, repeats: int = 3,
               seed: int = 0, memory_frames: tuple[int, ...] = ()) -> Case:
  """Wan VAE decode of a `frames` x size² video's latents, f32; FLOPs counted on the reference.

  memory_frames: frame counts at which both sides' scratch memory (peak minus output) is also
  measured, to show it stays flat as the video grows (both decode causally, chunk by chunk).
  """
  import torch

  pair = ref_lib.load_pair(ref_lib.vae_wan_reference(config), seed=seed)
  model = pair.model
  decode = lambda p, z: model.apply({"params": p}, z, method="decode")
  z = _latents(pair.config, frames, size, seed)
  jcall, jout, jinfo = build_jax(decode, pair.params, z)
  zt = torch.from_numpy(z).permute(0, 4, 1, 2, 3).contiguous()
  reference_decode = lambda zt: pair.reference.decode(zt).sample
  tcall, tout, tinfo = build_torch(lambda: reference_decode(zt))
  flops = flops_lib.torch_counted(lambda: reference_decode(zt))

  memory = []
  for n in memory_frames:
    zn = _latents(pair.config, n, size, seed)
    out_bytes = 4 * n * size * size * config.out_channels
    jmem = jax_memory(jax.jit(decode).lower(pair.params, zn).compile())
    ztn = torch.from_numpy(zn).permute(0, 4, 1, 2, 3).contiguous()
    with torch.inference_mode():
      tpeak = torch_peak_bytes(lambda: reference_decode(ztn))
    memory.append({"frames": n, "output_bytes": out_bytes,
                   "jaxgen_scratch_bytes": jmem["temp"],
                   "diffusers_scratch_bytes": tpeak - out_bytes,
                   "jaxgen_peak_bytes": jmem["peak_bytes"], "diffusers_peak_bytes": tpeak})
  return Case(
      name, f"Wan VAE decode, base_dim {config.base_dim}, {frames} frames at {size}x{size} "
      f"(latents {list(z.shape[1:4])}), f32", flops,
      {"jaxgen": jcall, "diffusers": tcall}, repeats, {"jaxgen": jinfo, "diffusers": tinfo},
      ref_lib.rel_err(jout, ref_lib.to_numpy(tout).transpose(0, 2, 3, 4, 1)),
      {"frames": frames, "size": size, "memory_vs_frames": memory})


def small_wan(config: Any, layers: int, width: int, heads: int, ffn: int) -> Any:
  """A Wan config with the architecture of `config` at a smaller size."""
  return dataclasses.replace(config, num_layers=layers, num_heads=heads, head_dim=width // heads,
                             ffn_dim=ffn)
