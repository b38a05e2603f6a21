"""jaxgen's native checkpoint format: converted params (Orbax) + the config as JSON.

    DST/jaxgen.json   format version, jaxgen version, family, source class, config class and fields
    DST/params/       an Orbax StandardCheckpointer PyTree of the float32 params

Saving writes DST.tmp-* beside DST and renames it into place, so DST is either whole or absent.
"""

import dataclasses
import importlib
import json
import os
from typing import Any

from jaxgen import files
from jaxgen.zoo import checkpoint
from jaxgen.zoo import families

FORMAT = "jaxgen-native"
FORMAT_VERSION = 1
META_FILE = "jaxgen.json"
PARAMS_DIR = "params"


def config_to_json(value: Any) -> Any:
  """A config field value as JSON (tuples, dtypes and nested configs tagged to round-trip)."""
  if dataclasses.is_dataclass(value) and not isinstance(value, type):
    return {"__config__": f"{type(value).__module__}:{type(value).__qualname__}",
            "fields": {f.name: config_to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}}
  if isinstance(value, tuple):
    return {"__tuple__": [config_to_json(v) for v in value]}
  if isinstance(value, list):
    return [config_to_json(v) for v in value]
  if isinstance(value, dict):
    return {k: config_to_json(v) for k, v in value.items()}
  if value is None or isinstance(value, (bool, int, float, str)):
    return value
  import numpy as np

  try:
    return {"__dtype__": np.dtype(value).name}
  except TypeError:
    raise ValueError(f"config value {value!r} cannot be stored as JSON") from None


def config_from_json(value: Any) -> Any:
  if isinstance(value, list):
    return [config_from_json(v) for v in value]
  if not isinstance(value, dict):
    return value
  if "__tuple__" in value:
    return tuple(config_from_json(v) for v in value["__tuple__"])
  if "__dtype__" in value:
    import jax.numpy as jnp

    return getattr(jnp, value["__dtype__"])
  if "__config__" in value:
    cls = _import_class(value["__config__"])
    return cls(**{k: config_from_json(v) for k, v in value["fields"].items()})
  return {k: config_from_json(v) for k, v in value.items()}


def _import_class(qualified: str) -> type:
  module, _, name = qualified.partition(":")
  if not module.startswith("jaxgen."):  # Never import arbitrary code named by a file.
    raise ValueError(f"config class {qualified!r} is not a jaxgen class")
  return getattr(importlib.import_module(module), name)


def save(dst: str | os.PathLike, config: Any, params: dict, *, source_class: str | None = None,
         overwrite: bool = False) -> str:
  """Writes `config` and `params` (numpy or jax arrays) to directory `dst`; returns its path."""
  import orbax.checkpoint as ocp

  import jaxgen

  dst = os.path.abspath(os.fspath(dst))
  if os.path.exists(dst) and not overwrite:
    raise ValueError(f"dst={dst!r} already exists; expected a new path (or pass overwrite=True)")
  meta = {
      "format": FORMAT, "format_version": FORMAT_VERSION, "jaxgen_version": jaxgen.__version__,
      "family": families.family_of_config(config).name, "source_class": source_class,
      "config": config_to_json(config),
  }

  def fill(tmp):
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(os.path.join(tmp, PARAMS_DIR), params)
    checkpointer.wait_until_finished()
    checkpointer.close()
    with open(os.path.join(tmp, META_FILE), "w") as f:
      json.dump(meta, f, indent=2)

  files.write_directory(dst, fill)
  return dst


def read_meta(src: str | os.PathLike) -> dict:
  """The jaxgen.json of a native checkpoint, with clear errors for a wrong directory."""
  src = os.fspath(src)
  meta_file = os.path.join(src, META_FILE)
  if not os.path.isfile(meta_file) or not os.path.isdir(os.path.join(src, PARAMS_DIR)):
    raise ValueError(f"{src!r} is not a jaxgen native checkpoint; expected {src}/{META_FILE} and "
                     f"{src}/{PARAMS_DIR}/ (written by `jaxgen convert` or jaxgen.zoo.save)")
  with open(meta_file) as f:
    meta = json.load(f)
  if meta.get("format") != FORMAT or meta.get("format_version", 0) > FORMAT_VERSION:
    raise ValueError(f"{meta_file!r} has format {meta.get('format')!r} version "
                     f"{meta.get('format_version')}; expected {FORMAT!r} <= {FORMAT_VERSION}")
  return meta


def restore(src: str | os.PathLike, *, dtype: Any = None,
            shardings: Any = None) -> tuple[Any, dict]:
  """Reads a native checkpoint -> (config, params as float32 jax arrays).

  `dtype` sets the config's compute dtype. Params land on `shardings` (a pytree of
  jax.sharding.Sharding shaped like params) when given, else on the default device.
  """
  import jax
  import orbax.checkpoint as ocp

  src = os.path.abspath(os.fspath(src))
  meta = read_meta(src)
  config = config_from_json(meta["config"])
  if dtype is not None:
    config = checkpoint.with_dtype(config, dtype)
  path = os.path.join(src, PARAMS_DIR)
  checkpointer = ocp.StandardCheckpointer()
  stored = checkpointer.metadata(path).item_metadata.tree
  if shardings is None:
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    shardings = jax.tree.map(lambda _: device, stored)
  try:
    target = jax.tree.map(lambda m, s: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=s),
                          stored, shardings)
  except ValueError as e:
    raise ValueError(f"shardings does not match the params stored in {path!r}: {e}") from e
  params = checkpointer.restore(path, target)
  checkpointer.close()
  return config, params
