"""Which cases a `jaxgen bench` invocation runs, at which sizes: (name, factory) pairs."""

import dataclasses
import functools
from typing import Any

import jax

# GEMM shapes (m, k, n) of the peak sweep: squares and the transformer blocks' own shapes.
CPU_PEAK_SHAPES = ((1024, 1024, 1024), (2048, 1024, 2048), (2048, 2048, 2048), (2048, 768, 3072),
                   (4096, 4096, 4096))
GPU_PEAK_SHAPES = ((4096, 4096, 4096), (8192, 8192, 8192), (16384, 1536, 8960))
SMALL_PEAK_SHAPES = ((64, 64, 64), (128, 64, 128))

# The video DiT of the CPU cases: Wan 2.1's architecture at 8 layers, width 512 (4 heads of 128).
WAN_SMALL = dict(num_layers=8, num_heads=4, head_dim=128, ffn_dim=2048)
TEXT_LEN = 512  # Wan 2.1 pads its umT5 context to 512 tokens.


@dataclasses.dataclass
class Plan:
  cases: list  # [(name, factory)]
  torch_device: str
  peak_dtype: str
  peak_shapes: tuple[tuple[int, int, int], ...]


def cases(args: Any, names: list[str]) -> Plan:
  """What the parsed CLI args ask to run."""
  from jaxgen.bench import cases as fwd
  from jaxgen.bench import sampling
  from jaxgen.models import dit, vae_wan, wan

  repeat = lambda default: args.repeats or default
  wan_base = wan.PRESETS["wan2.1-t2v-1.3b"]
  if args.mode == "gpu":
    on_gpu = jax.default_backend() == "gpu"
    device = "cuda" if on_gpu else "cpu"
    config, grid, batch = wan_base, (21, 30, 52), 2  # 81 frames at 480x832: 21x60x104 latents.
    if args.small:
      config, grid = dataclasses.replace(wan_base, num_layers=2, num_heads=2, head_dim=32,
                                         ffn_dim=128, text_dim=64), (3, 4, 6)
    factory = functools.partial(
        fwd.wan_forward, "wan2.1-1.3b-step" + ("-small" if args.small else ""), config, grid,
        text_len=16 if args.small else TEXT_LEN, batch=batch, repeats=repeat(3),
        dtype="bfloat16", device=device, attention_impl="cudnn" if on_gpu else None)
    shapes = SMALL_PEAK_SHAPES if args.small else GPU_PEAK_SHAPES
    return Plan([("wan2.1-1.3b-step", factory)], device, "bfloat16", shapes)

  dit_s, dit_b, dit_xl = (dit.PRESETS[f"dit-{s}-2-256"] for s in ("s", "b", "xl"))
  wan_config = dataclasses.replace(wan_base, **WAN_SMALL)
  vae_config = vae_wan.PRESETS["wan2.1-vae"]
  wan_grid, text_len, vae_size, dit_batch = tuple(args.wan_grid), TEXT_LEN, args.vae_size, 8
  vae_frames, memory_frames, steps = args.vae_frames, tuple(args.vae_memory_frames), args.steps
  if args.small:
    tiny = dict(num_layers=2, num_heads=2, head_dim=32, sample_size=8, num_classes=10)
    dit_s = dit_b = dit_xl = dataclasses.replace(dit_s, **tiny)
    wan_config = dataclasses.replace(wan_base, num_layers=2, num_heads=2, head_dim=32,
                                     ffn_dim=128, text_dim=64)
    vae_config = dataclasses.replace(vae_config, base_dim=8, dim_mult=(1, 2, 2, 2))
    wan_grid, text_len, vae_size, dit_batch = (2, 4, 4), 16, 16, 2
    vae_frames, memory_frames, steps = 5, (5, 9), min(steps, 4)
  factories = {
      "dit-s2": functools.partial(fwd.dit_forward, "dit-s2", dit_s, dit_batch, repeat(5)),
      "dit-b2": functools.partial(fwd.dit_forward, "dit-b2", dit_b, dit_batch, repeat(5)),
      "wan": functools.partial(fwd.wan_forward, "wan-video", wan_config, wan_grid, text_len,
                               repeats=repeat(3)),
      "vae": functools.partial(fwd.vae_decode, "vae-decode", vae_config, vae_frames, vae_size,
                               repeat(3), memory_frames=memory_frames),
      "sample": functools.partial(sampling.sampling_loop, "sample-dit-s2", dit_s, steps=steps,
                                  repeats=repeat(3)),
      "compile": functools.partial(sampling.sampler_compile, "compile-dit-xl2-sampler", dit_xl,
                                   steps=steps),
  }
  return Plan([(n, factories[n]) for n in names], "cpu", "float32",
              SMALL_PEAK_SHAPES if args.small else CPU_PEAK_SHAPES)
