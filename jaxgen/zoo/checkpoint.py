"""Loading a local diffusers/transformers model directory (config.json + safetensors) into jaxgen.

    config, params = load("PixArt-XL-2-512x512/transformer", dtype="bfloat16")

No hub access: the directory must already be on disk (e.g. a `huggingface-cli download` copy).
"""

import dataclasses
import glob
import json
import logging
import os
from typing import Any

from jaxgen.zoo import families
from jaxgen.zoo.safetensors_reader import CheckpointError
from jaxgen.zoo.safetensors_reader import SafetensorsReader

log = logging.getLogger(__name__)


def _layout(path: str, stem: str) -> str:
  return (f"expected {path}/config.json and {path}/{stem}.safetensors (or "
          f"{stem}.safetensors.index.json + the shards it lists)")


def read_config(path: str | os.PathLike) -> dict:
  """The config.json dict of model directory `path`, with clear errors for a wrong directory."""
  path = os.fspath(path)
  if not os.path.isdir(path):
    raise CheckpointError(f"checkpoint directory {path!r} does not exist; expected a local "
                          "diffusers/transformers model directory holding config.json + "
                          "*.safetensors")
  config_file = os.path.join(path, "config.json")
  if not os.path.isfile(config_file):
    if os.path.isfile(os.path.join(path, "model_index.json")):
      parts = sorted(d for d in os.listdir(path) if os.path.isfile(os.path.join(path, d,
                                                                                "config.json")))
      raise CheckpointError(f"{path!r} is a diffusers pipeline (model_index.json); pass one of its "
                            f"model folders instead: {', '.join(parts) or '(none found)'}")
    raise CheckpointError(f"{config_file!r} is missing; {_layout(path, 'diffusion_pytorch_model')}"
                          f" for diffusers, or {path}/model.safetensors for transformers")
  try:
    with open(config_file) as f:
      return json.load(f)
  except json.JSONDecodeError as e:
    raise CheckpointError(f"{config_file!r} is not valid JSON ({e})") from e


def weight_files(path: str, stem: str, variant: str | None = None) -> list[str]:
  """The safetensors files of a model directory: `stem[.variant].safetensors`, or the shards of
  its `.safetensors.index.json`; a lone differently named file/index is accepted too."""
  suffix = f".{variant}" if variant else ""
  index = os.path.join(path, f"{stem}{suffix}.safetensors.index.json")
  single = os.path.join(path, f"{stem}{suffix}.safetensors")
  if not os.path.exists(index) and not os.path.exists(single) and variant is None:
    indexes = glob.glob(os.path.join(path, "*.safetensors.index.json"))
    singles = glob.glob(os.path.join(path, "*.safetensors"))
    if len(indexes) == 1:
      index = indexes[0]
    elif not indexes and len(singles) == 1:
      single = singles[0]
  if os.path.exists(index):
    try:
      with open(index) as f:
        weight_map = json.load(f)["weight_map"]
    except (json.JSONDecodeError, KeyError) as e:
      raise CheckpointError(f"{index!r} is not a safetensors index (no 'weight_map')") from e
    shards = sorted(set(weight_map.values()))
    missing = [s for s in shards if not os.path.isfile(os.path.join(path, s))]
    if missing:
      raise CheckpointError(f"{index!r} lists shards missing from {path!r}: {missing}; "
                            f"{_layout(path, stem)}")
    return [os.path.join(path, s) for s in shards]
  if os.path.exists(single):
    return [single]
  found = sorted(os.path.basename(p) for p in glob.glob(os.path.join(path, "*.safetensors*")))
  pickles = glob.glob(os.path.join(path, "*.bin")) + glob.glob(os.path.join(path, "*.pt*"))
  hint = (" (only PyTorch pickle files are there; re-save them with safetensors)" if pickles and
          not found else f" (found: {found})" if found else "")
  raise CheckpointError(f"no safetensors weights{' for variant ' + variant if variant else ''} "
                        f"in {path!r}{hint}; {_layout(path, stem)}")


def with_dtype(config: Any, dtype: Any) -> Any:
  """`config` with compute dtype `dtype` (a name such as "bfloat16" or a numpy/jnp dtype)."""
  import jax.numpy as jnp

  try:
    jdtype = getattr(jnp, jnp.dtype(dtype).name)
  except TypeError as e:
    raise ValueError(f"dtype={dtype!r}; expected a floating dtype such as 'float32' or "
                     "'bfloat16'") from e
  if not jnp.issubdtype(jdtype, jnp.floating):
    raise ValueError(f"dtype={dtype!r}; expected a floating dtype such as 'float32' or 'bfloat16'")
  if not any(f.name == "dtype" for f in dataclasses.fields(config)):
    raise ValueError(f"{type(config).__name__} has no compute dtype to set (dtype={dtype!r})")
  return dataclasses.replace(config, dtype=jdtype)


def check_params(params: dict, expected: dict, what: str) -> None:
  """Raises CheckpointError unless `params` has exactly `expected`'s names and shapes."""
  def flat(tree, prefix=()):
    for k, v in tree.items():
      if isinstance(v, dict):
        yield from flat(v, prefix + (k,))
      else:
        yield "/".join(prefix + (k,)), tuple(v.shape)

  got, want = dict(flat(params)), dict(flat(expected))
  if got.keys() != want.keys():
    raise CheckpointError(f"{what}: params differ from the model's: missing "
                          f"{sorted(want.keys() - got.keys())[:5]}, unexpected "
                          f"{sorted(got.keys() - want.keys())[:5]}")
  bad = [(k, got[k], want[k]) for k in want if got[k] != want[k]]
  if bad:
    k, g, w = bad[0]
    raise CheckpointError(f"{what}: param {k} has shape {g} from the checkpoint; the model's "
                          f"config expects {w} ({len(bad)} mismatched in all)")


def place(params: dict, shardings: Any) -> dict:
  """Moves host params onto `shardings` leaf by leaf, releasing each host array once placed."""
  import jax

  def walk(tree, target, prefix):
    out = {}
    for k in list(tree):
      v = tree.pop(k)  # Drop the host reference as soon as the leaf is on its devices.
      if k not in target:
        raise ValueError(f"shardings has no entry for param {prefix + k!r}")
      out[k] = walk(v, target[k], prefix + k + "/") if isinstance(v, dict) else jax.device_put(
          v, target[k])
    return out

  return walk(params, shardings, "")


def load_config(path: str | os.PathLike, *, dtype: Any = None) -> Any:
  """The jaxgen config of the model in local directory `path` (no weights read), e.g. to
  compute the shardings to `load` it onto."""
  path = os.fspath(path)
  cfg = read_config(path)
  config = families.family_for(cfg, where=os.path.join(path, "config.json")).config_from_source(cfg)
  return config if dtype is None else with_dtype(config, dtype)


def load(path: str | os.PathLike, *, dtype: Any = None, shardings: Any = None,
         variant: str | None = None) -> tuple[Any, dict]:
  """Reads the model in local directory `path` -> (jaxgen config, Flax params).

  The class comes from config.json (`_class_name` or `architectures`); tensors are read lazily
  one at a time and converted to float32. `dtype` sets the config's compute dtype (params stay
  float32). Without `shardings` params are host numpy arrays; with it (a pytree of
  jax.sharding.Sharding shaped like params) each is placed with jax.device_put.
  `variant` selects e.g. `diffusion_pytorch_model.fp16.safetensors`.
  """
  path = os.fspath(path)
  cfg = read_config(path)
  family = families.family_for(cfg, where=os.path.join(path, "config.json"))
  config = family.config_from_source(cfg)
  if dtype is not None:
    config = with_dtype(config, dtype)
  files = weight_files(path, family.weights_name, variant)
  what = f"{families.source_class(cfg)} in {path!r}"
  with SafetensorsReader.from_files(files) as reader:
    try:
      params = family.convert_params(config, reader)
    except KeyError as e:  # A tensor the converter needs is absent: a wrong or truncated file.
      msg = e.args[0] if e.args else e
      raise CheckpointError(f"{what}: {msg}") from e
    except CheckpointError:
      raise
    except ValueError as e:  # A shape the config does not expect.
      raise CheckpointError(f"{what}: {e}") from e
    unused = reader.unused()
  if unused:
    log.warning("%s: %d tensors not used by the conversion, e.g. %s", what, len(unused),
                unused[:5])
  check_params(params, family.param_shapes(config), what)
  if shardings is not None:
    params = place(params, shardings)
  return config, params
