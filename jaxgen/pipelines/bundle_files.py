"""The files every bundle directory holds, whatever it bundles (a text-to-video model, a stage).

    DIR/<meta file>         {"format", "version", "config"}: the bundle kind and its config as JSON
    DIR/params.safetensors  the params flattened to "/"-joined names, float32 or float16
    DIR/tokenizer/          a transformers tokenizer (save_pretrained layout)

Saving writes a temporary directory beside DIR and renames it into place, so a bundle is either
whole or absent.
"""

import json
import os
import shutil
from typing import Any

import numpy as np

from jaxgen import files
from jaxgen.zoo import native

STORAGE_DTYPES = ("float32", "float16")  # float16 halves the size; loading casts to float32
PARAMS_FILE = "params.safetensors"
TOKENIZER_DIR = "tokenizer"


def save(path: str | os.PathLike, meta_file: str, meta: dict, config: Any, params: dict,
         tokenizer: Any, storage_dtype: str) -> str:
  """Writes the bundle atomically; meta (format, version) gets the config. tokenizer: a
  transformers tokenizer or a directory holding one. -> the absolute path."""
  from flax import traverse_util  # pylint: disable=g-import-not-at-top
  from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top

  if storage_dtype not in STORAGE_DTYPES:
    raise ValueError(f"storage_dtype={storage_dtype!r} is not supported; expected one of "
                     f"{STORAGE_DTYPES}")
  path = os.path.abspath(os.fspath(path))

  def fill(tmp):
    flat = traverse_util.flatten_dict(params, sep="/")
    save_file({k: np.asarray(v, np.float32).astype(storage_dtype) for k, v in flat.items()},
              os.path.join(tmp, PARAMS_FILE))
    if isinstance(tokenizer, (str, os.PathLike)):
      shutil.copytree(tokenizer, os.path.join(tmp, TOKENIZER_DIR))
    else:
      tokenizer.save_pretrained(os.path.join(tmp, TOKENIZER_DIR))
    with open(os.path.join(tmp, meta_file), "w") as f:
      json.dump({**meta, "config": native.config_to_json(config)}, f, indent=1)

  files.write_directory(path, fill)
  return path


def load(path: str | os.PathLike, meta_file: str, kind: str, meta: dict) -> tuple[Any, dict]:
  """-> (config, params as float32 numpy) of the bundle at path, whose meta file must hold the
  format and version in `meta`; kind names the bundle in errors."""
  from flax import traverse_util  # pylint: disable=g-import-not-at-top
  from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top

  path = os.fspath(path)
  names = (meta_file, PARAMS_FILE, TOKENIZER_DIR)
  if not all(os.path.exists(os.path.join(path, n)) for n in names):
    raise ValueError(f"{path!r} is not a jaxgen {kind}; expected {path}/{meta_file}, "
                     f"{path}/{PARAMS_FILE} and {path}/{TOKENIZER_DIR}/")
  with open(os.path.join(path, meta_file)) as f:
    found = json.load(f)
  if any(found.get(k) != v for k, v in meta.items()):
    raise ValueError(f"{path}/{meta_file} has format {found.get('format')!r} version "
                     f"{found.get('version')}; expected {meta['format']!r} version "
                     f"{meta['version']}")
  flat = {k: v.astype(np.float32) for k, v in load_file(os.path.join(path, PARAMS_FILE)).items()}
  return native.config_from_json(found["config"]), traverse_util.unflatten_dict(flat, sep="/")
