"""Experiment configs: ml_collections `get_config(arg)` files and `--config.a.b=value` overrides.

A small stand-in for `ml_collections.config_flags` that works with argparse instead of absl.
"""

import ast
import importlib.util
import os
from collections.abc import Sequence

import ml_collections

PREFIX = "--config."


def load(spec: str) -> ml_collections.ConfigDict:
  """Calls `get_config(arg)` of the file in `spec` = "path/to/file.py[:arg]"."""
  path, _, arg = spec.partition(":")
  if not path.endswith(".py") or not os.path.isfile(path):
    raise ValueError(f"--config: expected an existing .py file (optionally ':arg'), got {spec!r}")
  module_spec = importlib.util.spec_from_file_location(
      "jaxgen_experiment_config_" + os.path.splitext(os.path.basename(path))[0], path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  if not hasattr(module, "get_config"):
    raise ValueError(f"--config: {path} defines no get_config(arg)")
  config = module.get_config(arg) if arg else module.get_config()
  if not isinstance(config, ml_collections.ConfigDict):
    raise ValueError(f"--config: get_config of {path} returned {type(config).__name__}; "
                     "expected an ml_collections.ConfigDict")
  return config


def split_overrides(argv: Sequence[str]) -> tuple[list[str], list[tuple[str, str]]]:
  """Separates `--config.a.b=v` / `--config.a.b v` pairs from the other arguments."""
  rest, overrides, argv = [], [], list(argv)
  i = 0
  while i < len(argv):
    arg = argv[i]
    if arg.startswith(PREFIX):
      name, eq, value = arg[len(PREFIX):].partition("=")
      if not eq:
        if i + 1 >= len(argv):
          raise ValueError(f"{arg}: expected a value ({arg}=VALUE)")
        i += 1
        value = argv[i]
      overrides.append((name, value))
    else:
      rest.append(arg)
    i += 1
  return rest, overrides


def _parse(text: str, current):
  """`text` as a value of the type of `current`; "None" is None for any field (switches one off)."""
  if text == "None":
    return None
  if isinstance(current, bool):
    lowered = text.lower()
    if lowered in ("true", "1", "yes"):
      return True
    if lowered in ("false", "0", "no"):
      return False
    raise ValueError(f"expected true or false, got {text!r}")
  if isinstance(current, int):
    return int(text)
  if isinstance(current, float):
    return float(text)
  if isinstance(current, str):
    return text
  try:
    value = ast.literal_eval(text)
  except (ValueError, SyntaxError):
    if current is None:
      return text
    raise
  if isinstance(current, tuple) and isinstance(value, list):
    value = tuple(value)
  if isinstance(current, tuple) and not isinstance(value, tuple):
    value = (value,)
  return value


def apply_overrides(config: ml_collections.ConfigDict,
                    overrides: Sequence[tuple[str, str]]) -> ml_collections.ConfigDict:
  """Sets each dotted `name` of `config` to its parsed value; unknown names raise ValueError."""
  for name, text in overrides:
    *parents, leaf = name.split(".")
    node = config
    for part in parents:
      if not isinstance(node, ml_collections.ConfigDict) or part not in node:
        raise ValueError(f"--config.{name}: the config has no field {name!r}")
      node = node[part]
    if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
      raise ValueError(f"--config.{name}: the config has no field {name!r}")
    try:
      value = _parse(text, node[leaf])
    except (ValueError, SyntaxError) as e:
      raise ValueError(f"--config.{name}={text!r}: cannot be read as a "
                       f"{type(node[leaf]).__name__} ({e})") from None
    try:
      node[leaf] = value
    except TypeError as e:
      raise ValueError(f"--config.{name}={text!r}: {e}") from None
  return config
