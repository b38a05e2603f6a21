"""`jaxgen train --config experiments/configs/NAME.py[:arg] --workdir DIR [--config.a.b=value ...]`.

Trains, or resumes from DIR's latest checkpoint; metrics go to DIR/metrics.jsonl, and at the end
DIR/loss.png and DIR/samples.png. JAX is imported only when a run starts.
"""

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--config", required=True,
                      help="experiment config file, optionally with its argument: FILE.py[:ARG]")
  parser.add_argument("--workdir", required=True,
                      help="directory for checkpoints, metrics and plots; resumed if it has any")
  parser.add_argument("--no-progress", action="store_true", help="no progress bar")
  parser.add_argument("--stop-at", type=int, default=None,
                      help="stop (with a checkpoint) at this step; a later run resumes from it")
  parser.add_argument("--print-config", action="store_true",
                      help="print the config (with overrides) and exit")
  parser.epilog = "Any config field can be overridden with --config.FIELD=VALUE (dotted names)."
  # argparse has no wildcard options: `--config.a.b=v` pairs are taken out before it parses.
  parse_known_args = parser.parse_known_args

  def parse_with_overrides(args=None, namespace=None):
    from jaxgen.train import config_lib
    args = sys.argv[1:] if args is None else args
    try:
      rest, overrides = config_lib.split_overrides(args)
    except ValueError as e:
      parser.error(str(e))
    namespace, unknown = parse_known_args(rest, namespace)
    namespace.config_overrides = overrides
    return namespace, unknown

  parser.parse_known_args = parse_with_overrides


def tcmalloc_hint(backend: str, maps: str) -> str | None:
  """How to preload tcmalloc, for a run on the CPU without it (its /proc/self/maps), else None.

  XLA:CPU allocates a step's large buffers afresh each step; glibc's malloc maps and unmaps them,
  so every step faults their pages in again, where tcmalloc reuses them (experiments/
  bench_malloc.py: 1.36x the steps/s of a Moving Digits image stage on 2 cores).
  """
  if backend != "cpu" or "tcmalloc" in maps:
    return None
  return ("jaxgen train: on the CPU, steps can run up to ~1.36x as fast under tcmalloc: "
          "LD_PRELOAD=libtcmalloc_minimal.so.4 jaxgen train ... "
          "(Debian/Ubuntu: apt install libtcmalloc-minimal4)")


def run(args: argparse.Namespace) -> int:
  from jaxgen.train import config_lib
  config = config_lib.apply_overrides(config_lib.load(args.config),
                                      getattr(args, "config_overrides", []))
  if args.print_config:
    print(config)
    return 0
  if args.stop_at is not None and args.stop_at < 0:
    raise ValueError(f"--stop-at={args.stop_at}: expected a non-negative step")
  import jax
  from jaxgen.train import loop
  if sys.platform.startswith("linux"):
    with open("/proc/self/maps") as f:
      hint = tcmalloc_hint(jax.default_backend(), f.read())
    if hint:
      print(hint, file=sys.stderr)
  result = loop.train(config, args.workdir, progress=not args.no_progress, stop_at=args.stop_at)
  if result["metrics"]:
    print(json.dumps(result["metrics"][-1]))
  return 0
