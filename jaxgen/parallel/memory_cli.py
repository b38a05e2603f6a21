"""`jaxgen memory`: will a preset train (or sample) on a mesh? Ahead-of-time, no accelerator needed.

  jaxgen memory --preset wan2.1-t2v-14b --mesh fsdp=8 --frames 81 --height 480 --width 832 \
      --remat full --device-memory 80GB

By default the mesh is simulated with CPU devices (as many as it has), so the answer comes before
any pod is rented. On a machine with one GPU, --mock-gpus 8 compiles for 8 GPUs with the GPU
compiler (XLA's mock NCCL topology): the buffer sizes are then the GPU's own. With libtpu
installed (`pip install "jax[tpu]"`), --tpu v5p:2x2x2 compiles for a TPU slice from any machine,
with the TPU compiler's own buffer sizes. --real compiles for this machine's devices as they are.
"""

import argparse
import json
import os

_PLATFORM_NOTE = ("simulated on CPU devices: same shapes, shardings and remat as on the "
                  "accelerator, but the CPU compiler's buffers (f32 copies of bf16 matmul "
                  "operands, its own schedule) differ from an accelerator's by up to ~20%; --tpu "
                  "or --mock-gpus give an accelerator compiler's sizes")


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--preset", default="wan2.1-t2v-14b", help="a Wan preset (jaxgen models)")
  parser.add_argument("--mesh", default="fsdp=-1",
                      help="mesh sizes, e.g. 'fsdp=8' or 'data=2,fsdp=4,context=2'; -1 fills")
  parser.add_argument("--devices", type=int, default=8,
                      help="number of devices to simulate (ignored with --real)")
  parser.add_argument("--real", action="store_true", help="compile for this machine's devices")
  parser.add_argument("--mock-gpus", type=int, default=0,
                      help="compile for this many GPUs mocked on this machine's GPU")
  parser.add_argument("--tpu", default=None,
                      help="compile for a TPU topology, e.g. v5p:2x2x2 (needs libtpu, no TPU)")
  parser.add_argument("--mode", default="train", choices=("train", "sample"))
  parser.add_argument("--frames", type=int, default=81, help="video frames (pixels)")
  parser.add_argument("--height", type=int, default=480)
  parser.add_argument("--width", type=int, default=832)
  parser.add_argument("--batch", type=int, default=None,
                      help="global batch (default: one video per batch shard)")
  parser.add_argument("--text-len", type=int, default=512, help="text tokens (umT5: 512)")
  parser.add_argument("--remat", default="full", help="remat policy (jaxgen.nn.scan)")
  parser.add_argument("--dtype", default="bfloat16", help="compute dtype")
  parser.add_argument("--attention", default=None,
                      help="attention implementation; default 'ring' on CPU (never holds the "
                           "[L, L] logits, like flash attention), 'cudnn' on GPU, auto on TPU")
  parser.add_argument("--steps", type=int, default=50, help="sampling steps (--mode sample)")
  parser.add_argument("--device-memory", default="80GB", help="memory of one device, e.g. 80GB")
  parser.add_argument("--json", action="store_true", help="print the report as JSON")


def _simulate(num_devices: int) -> None:
  """Points JAX at num_devices CPU devices; must run before JAX starts its backends."""
  import sys

  flags = os.environ.get("XLA_FLAGS", "")
  flag = f"--xla_force_host_platform_device_count={num_devices}"
  os.environ["XLA_FLAGS"] = " ".join(
      [f for f in flags.split() if "xla_force_host_platform_device_count" not in f] + [flag])
  os.environ["JAX_PLATFORMS"] = "cpu"
  if "jax" in sys.modules:
    import jax
    from jax._src import xla_bridge

    if xla_bridge.backends_are_initialized():
      if jax.default_backend() != "cpu" or jax.device_count() < num_devices:
        raise ValueError(f"--devices={num_devices}: JAX already started with "
                         f"{jax.device_count()} {jax.default_backend()} devices; run `jaxgen "
                         "memory` in a fresh process")
    else:
      jax.config.update("jax_platforms", "cpu")


def _mock_gpus(num_devices: int) -> None:
  """XLA's mock NCCL topology: one host of num_devices GPUs, compiled for on the GPU present."""
  import sys

  topology = f"1x1x{num_devices}"
  os.environ["JAX_MOCK_GPU_TOPOLOGY"] = topology
  if "jax" in sys.modules:
    import jax

    jax.config.update("jax_mock_gpu_topology", topology)


def _tpu_devices(topology: str) -> list:
  """Abstract devices of a TPU slice, for compiling without one (needs libtpu)."""
  from jax.experimental import topologies

  try:
    return list(topologies.get_topology_desc(platform="tpu", topology_name=topology).devices)
  except Exception as e:  # libtpu missing or the name unknown: say which and how to fix it.
    raise ValueError(f"--tpu={topology!r}: cannot describe this TPU topology ({e}); expected a "
                     "name like 'v5p:2x2x2' or 'v6e:2x4', with libtpu installed (pip install "
                     "'jax[tpu]')") from None


def run(args: argparse.Namespace) -> int:
  import dataclasses

  from jaxgen.parallel import memory

  device_bytes = memory.parse_bytes(args.device_memory)
  latent_shape = memory.latent_shape_for(args.frames, args.height, args.width)
  simulated = not (args.real or args.mock_gpus or args.tpu)
  if args.tpu:
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
  elif args.mock_gpus:
    _mock_gpus(args.mock_gpus)
  elif simulated:
    if args.devices < 1:
      raise ValueError(f"--devices={args.devices}; expected a positive number of devices")
    _simulate(args.devices)

  import jax

  from jaxgen.models import wan
  from jaxgen.parallel import checks, mesh as mesh_lib, rules as rules_lib

  if args.preset not in wan.PRESETS:
    raise ValueError(f"--preset={args.preset!r}; expected one of {sorted(wan.PRESETS)}")
  devices = jax.devices()[:args.devices] if simulated else jax.devices()
  backend = jax.default_backend()
  if args.tpu:
    devices, backend = _tpu_devices(args.tpu), "tpu"
  mesh = mesh_lib.make_mesh(args.mesh, devices)
  rules = rules_lib.RULES
  # Splash attention is chosen at trace time by the local backend; off a TPU, ring attention
  # stands in for it (neither holds the [L, L] logits).
  attention = args.attention or {"cpu": "ring", "gpu": "cudnn", "tpu": "ring"}.get(backend)
  config = dataclasses.replace(wan.PRESETS[args.preset], dtype=args.dtype,
                               remat_policy=args.remat, attention_impl=attention)
  batch = args.batch or checks.shards_of(mesh, rules, "batch")[1]
  report = memory.analyze(wan.Wan(config), config, mesh, rules, batch_size=batch,
                          latent_shape=latent_shape, text_len=args.text_len, mode=args.mode,
                          num_steps=args.steps)
  if args.json:
    out = dataclasses.asdict(report)
    out.update(peak_bytes=report.peak_bytes, fits=report.fits(device_bytes),
               device_bytes=device_bytes, attention=attention, simulated=simulated,
               mock_gpus=args.mock_gpus, tpu=args.tpu)
    print(json.dumps(out))
  else:
    print(f"{args.preset}, {args.frames}×{args.height}×{args.width} video, remat={args.remat}, "
          f"{args.dtype}, attention={attention}"
          + (f", {args.mock_gpus} mocked GPUs" if args.mock_gpus else "")
          + (f", TPU {args.tpu} (AOT)" if args.tpu else ""))
    print(report.format(device_bytes))
    if simulated:
      print(f"  ({_PLATFORM_NOTE})")
  return 0
