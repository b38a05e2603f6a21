"""`jaxgen models`: the zoo's presets, with family, parameter count and expected source layout."""

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--family", default=None, help="only presets of this family (e.g. wan)")


def format_count(n: int | None) -> str:
  """1_234_567 -> '1.23M'; None -> '?'."""
  if n is None:
    return "?"
  for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
    if n >= size:
      return f"{n / size:.2f}{unit}"
  return str(n)


def rows(family: str | None = None) -> list[tuple[str, str, str, str]]:
  """(name, family, params, source) per preset; params '?' where the model module is missing."""
  from jaxgen.zoo import registry

  out = []
  for preset in registry.REGISTRY.values():
    if family is not None and preset.family != family:
      continue
    try:
      count = preset.num_params()
    except ImportError:  # A model family not installed in this build: list it anyway.
      count = None
    out.append((preset.name, preset.family, format_count(count), preset.source))
  return out


def run(args: argparse.Namespace) -> int:
  from jaxgen.zoo import families

  if args.family is not None and args.family not in families.FAMILIES:
    raise ValueError(f"--family={args.family!r}; expected one of {sorted(families.FAMILIES)}")
  table = [("NAME", "FAMILY", "PARAMS", "SOURCE")] + rows(args.family)
  widths = [max(len(r[i]) for r in table) for i in range(3)]
  for r in table:
    print("  ".join(c.ljust(w) for c, w in zip(r[:3], widths)) + "  " + r[3])
  if args.family is None:
    print("\ntext-to-video models for `jaxgen generate --model NAME`:")
    for name, count, description in pipelines():
      print(f"  {name.ljust(widths[0])}  {count.ljust(8)}  {description}")
  return 0


def pipelines() -> list[tuple[str, str, str]]:
  """(name, params, description) of the shipped text-to-video bundles, and random-tiny."""
  import json
  import math
  import os

  from safetensors import safe_open

  from jaxgen.pipelines import load

  out = []
  for name in load.shipped_models():
    path = os.path.join(load.WEIGHTS_DIR, name)
    with safe_open(os.path.join(path, "params.safetensors"), "np") as f:
      count = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
    with open(os.path.join(path, "model.json")) as f:
      description = json.load(f)["config"].get("description", "")
    out.append((name, format_count(count), description))
  out.append((load.RANDOM_TINY, "", "randomly initialised, built in memory; for tests and smoke runs"))
  return out
