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
    sections = (("text-to-video models and cascades for `jaxgen generate --model NAME`",
                 pipelines()),
                ("cascade stages for `jaxgen eval --model NAME` and "
                 "`jaxgen train --config.init_from=NAME`", stages()))
    width = max(len(name) for _, section in sections for name, _, _ in section)
    for title, section in sections:
      print(f"\n{title}:")
      for name, count, description in section:
        print(f"  {name.ljust(width)}  {count.ljust(8)}  {description}")
  return 0


def _shipped(name: str, meta_file: str) -> tuple[int, str]:
  """(parameter count, description) of a shipped bundle, read without loading its weights."""
  import json
  import math
  import os

  from safetensors import safe_open

  from jaxgen.pipelines import load

  path = os.path.join(load.WEIGHTS_DIR, name)
  with safe_open(os.path.join(path, "params.safetensors"), "np") as f:
    count = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
  with open(os.path.join(path, meta_file)) as f:
    description = json.load(f)["config"]["fields"].get("description", "")
  return count, description


def pipelines() -> list[tuple[str, str, str]]:
  """(name, params, description) of the shipped text-to-video bundles and cascades, and the
  randomly initialised tiny ones."""
  from jaxgen.pipelines import bundle, cascade, load

  models = {name: _shipped(name, bundle.META_FILE) for name in load.shipped_models()}
  out = [(name, format_count(count), description) for name, (count, description) in models.items()]
  for name in cascade.shipped_cascades():
    base, stages = cascade.CASCADES[name]
    count = models[base][0] + sum(_shipped(s, cascade.META_FILE)[0] for s in stages)
    out.append((name, format_count(count), " -> ".join((base,) + stages)))
  out.append((load.RANDOM_TINY, "", "randomly initialised, built in memory; for tests and smoke runs"))
  out.append((cascade.RANDOM_TINY_CASCADE, "",
              "random-tiny with two random tiny stages (TSR, SSR)"))
  return out


def stages() -> list[tuple[str, str, str]]:
  """(name, params, description) of the shipped cascade stages."""
  from jaxgen.pipelines import cascade, load

  return [(name, format_count(count), description)
          for name in load.shipped_models(cascade.META_FILE)
          for count, description in [_shipped(name, cascade.META_FILE)]]
