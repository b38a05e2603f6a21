"""`jaxgen convert SRC DST`: a local diffusers/transformers model folder -> jaxgen native format."""

import argparse
import os
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("src", help="local model directory: config.json + *.safetensors (e.g. the "
                      "transformer/, vae/ or text_encoder/ folder of a diffusers repo)")
  parser.add_argument("dst", help="output directory for the native checkpoint (Orbax params + "
                      "jaxgen.json); must not exist unless --overwrite")
  parser.add_argument("--dtype", default=None, help="compute dtype recorded in the config, "
                      "e.g. bfloat16 (params are always stored as float32)")
  parser.add_argument("--variant", default=None,
                      help="weights variant to read, e.g. fp16 for *.fp16.safetensors")
  parser.add_argument("--overwrite", action="store_true", help="replace an existing DST")


def run(args: argparse.Namespace) -> int:
  start = time.perf_counter()
  if os.path.exists(args.dst) and not args.overwrite:
    raise ValueError(f"DST={args.dst!r} already exists; expected a new path (or --overwrite)")
  import jax
  import numpy as np

  from jaxgen.zoo import checkpoint
  from jaxgen.zoo import families
  from jaxgen.zoo import native

  source = families.source_class(checkpoint.read_config(args.src))
  config, params = checkpoint.load(args.src, dtype=args.dtype, variant=args.variant)
  count = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))
  dst = native.save(args.dst, config, params, source_class=source, overwrite=args.overwrite)
  print(f"{source} -> {type(config).__name__}: {count:,} params "
        f"({4 * count / 2**30:.2f} GiB float32) converted in {time.perf_counter() - start:.1f}s "
        f"to {dst}")
  return 0
