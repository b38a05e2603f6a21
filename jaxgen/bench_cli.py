"""`jaxgen bench`: time jaxgen against diffusers on this machine, with the same weights.

    jaxgen bench --out bench.json --table bench.md                      # CPU mode, all cases
    jaxgen bench --cases dit-s2,sample --repeats 3
    jaxgen bench --mode gpu --out gpu.json                              # bf16 Wan 2.1 1.3B, 480p

JAX, torch and diffusers are imported only when the command runs.
"""

import argparse
import json
import os
import sys

CPU_CASES = ("dit-s2", "dit-b2", "wan", "vae", "sample", "compile")
GPU_CASES = ("wan-1.3b",)
# The targets on the CPU: forward ≥ 1.8x diffusers at ≥ 70% of the GEMM peak, sampling
# loop ≤ 5% over steps x one forward, DiT-XL/2 sampler compiled within 60 s.
CPU_TARGETS = {
    "dit-s2": {"speedup": 1.8, "mfu": 0.7},
    "dit-b2": {"speedup": 1.8, "mfu": 0.7},
    "wan-video": {"speedup": 1.8, "mfu": 0.7},
    "sample-dit-s2": {"overhead": 0.05},
    "compile-dit-xl2-sampler": {"compile_s": 60.0},
}


def _ints(text: str) -> tuple[int, ...]:
  try:
    return tuple(int(v) for v in text.split(","))
  except ValueError as e:
    raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated integers") from e


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--mode", choices=("cpu", "gpu"), default="cpu",
                      help="cpu: f32 cases on the CPU; gpu: bf16 full-size Wan 2.1 1.3B step "
                      "with cuDNN attention against diffusers with PyTorch SDPA")
  parser.add_argument("--cases", default=None,
                      help=f"comma-separated subset; cpu: {','.join(CPU_CASES)}; gpu: "
                      f"{','.join(GPU_CASES)} (default: all of the mode's)")
  parser.add_argument("--repeats", type=int, default=None,
                      help="timed repeats per case (default: 5 for DiT, 3 for the rest)")
  parser.add_argument("--wan-grid", type=_ints, default=(16, 32, 32),
                      help="video DiT token grid frames,height,width after patching")
  parser.add_argument("--vae-frames", type=int, default=17, help="frames of the timed decode")
  parser.add_argument("--vae-size", type=int, default=64, help="height = width of the video")
  parser.add_argument("--vae-memory-frames", type=_ints, default=(17, 33, 65),
                      help="frame counts at which decode memory is measured ('' for none)")
  parser.add_argument("--steps", type=int, default=50, help="sampling loop steps")
  parser.add_argument("--torch-threads", type=int, default=None,
                      help="torch.set_num_threads (default: all cores)")
  parser.add_argument("--small", action="store_true",
                      help="tiny configs: a quick check of the harness, not a benchmark")
  parser.add_argument("--out", default=None, help="write the JSON result here")
  parser.add_argument("--table", default=None, help="write the Markdown tables here")


def _selected(text: str | None, available: tuple[str, ...], mode: str) -> list[str]:
  if text is None:
    return list(available)
  names = [n for n in text.split(",") if n]
  bad = [n for n in names if n not in available]
  if bad or not names:
    raise ValueError(f"--cases={text!r}; expected a comma-separated subset of "
                     f"{','.join(available)} for --mode {mode}")
  return names


def _check(args) -> None:
  if args.repeats is not None and args.repeats < 1:
    raise ValueError(f"--repeats={args.repeats}; expected an integer >= 1")
  if len(args.wan_grid) != 3 or min(args.wan_grid) < 1:
    raise ValueError(f"--wan-grid={args.wan_grid}; expected three positive integers "
                     "frames,height,width")
  for n in (args.vae_frames,) + tuple(args.vae_memory_frames):
    if n < 1 or (n - 1) % 4:
      raise ValueError(f"VAE frame count {n}; expected 4k + 1 frames (17, 33, 65, ...)")
  if args.vae_size < 8 or args.vae_size % 8:
    raise ValueError(f"--vae-size={args.vae_size}; expected a positive multiple of 8")
  if args.steps < 1:
    raise ValueError(f"--steps={args.steps}; expected an integer >= 1")


def run(args) -> int:
  _check(args)
  names = _selected(args.cases, CPU_CASES if args.mode == "cpu" else GPU_CASES, args.mode)
  if args.mode == "gpu":
    # JAX and torch share the GPU in one process: JAX must not grab 75% of it up front.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
  import torch

  from jaxgen import files
  from jaxgen.bench import plan, report, runner

  torch.set_num_threads(args.torch_threads or os.cpu_count())
  todo = plan.cases(args, names)
  result = runner.run(
      todo.cases, mode=args.mode, peak_shapes=todo.peak_shapes, peak_dtype=todo.peak_dtype,
      torch_device=todo.torch_device,
      targets=CPU_TARGETS if args.mode == "cpu" and not args.small else {},
      log=lambda msg: print(msg, file=sys.stderr, flush=True))
  result["args"] = {k: v for k, v in vars(args).items() if k != "command"}
  result = runner.as_jsonable(result)
  text = report.table(result)
  print(text)
  if args.out:
    files.write_text(args.out, json.dumps(result, indent=1) + "\n")
  if args.table:
    files.write_text(args.table, text)
  return 0
