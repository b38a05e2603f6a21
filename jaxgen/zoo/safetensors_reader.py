"""Lazy, tensor-at-a-time reading of a (maybe sharded) safetensors checkpoint as float32 numpy."""

import json
import os

import numpy as np


class CheckpointError(ValueError):
  """A checkpoint directory that cannot be read as expected (missing file, tensor, bad shape)."""


class MissingTensorError(CheckpointError, KeyError):
  """The checkpoint has no tensor of that name (a KeyError too, so converters can fall back)."""

  def __str__(self) -> str:
    return str(self.args[0]) if self.args else ""


# safetensors dtypes that numpy cannot represent natively; ml_dtypes (a JAX dependency) can.
_ML_DTYPES = {"BF16": "bfloat16", "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2"}


def _read_header(path: str) -> tuple[dict, int]:
  """(tensor entries, byte offset of the data section) of one safetensors file."""
  with open(path, "rb") as f:
    size = int.from_bytes(f.read(8), "little")
    header = json.loads(f.read(size))
  header.pop("__metadata__", None)
  return header, 8 + size


class SafetensorsReader:
  """`reader(name) -> np.ndarray` (float32) over one or more safetensors files.

  Files are opened on first use and each tensor is read only when asked for, so converting a
  checkpoint never holds more than the converted params plus one source tensor in memory.
  """

  def __init__(self, files: dict[str, str]):
    """files: tensor name -> path of the safetensors file holding it."""
    self._files = files
    self._handles: dict[str, object] = {}
    self._headers: dict[str, tuple[dict, int]] = {}
    self.read_names: set[str] = set()

  @classmethod
  def from_files(cls, paths: list[str]) -> "SafetensorsReader":
    """A reader over the tensors of every file in `paths` (headers only are read now)."""
    files = {}
    for path in paths:
      for name in _read_header(path)[0]:
        files[name] = path
    return cls(files)

  def keys(self) -> list[str]:
    return list(self._files)

  def __contains__(self, name: str) -> bool:
    return name in self._files

  def __call__(self, name: str) -> np.ndarray:
    """The tensor `name` as a float32 numpy array; MissingTensorError if absent."""
    path = self._files.get(name)
    if path is None:
      raise MissingTensorError(f"tensor {name!r} not found in the checkpoint "
                               f"({len(self._files)} tensors, e.g. {sorted(self._files)[:3]})")
    if not os.path.exists(path):
      raise CheckpointError(f"safetensors shard {path!r} (holding tensor {name!r}) is missing")
    self.read_names.add(name)
    header, data_start = self._header(path)
    dtype = header[name]["dtype"]
    if dtype in _ML_DTYPES:
      return self._read_raw(path, header[name], data_start, _ML_DTYPES[dtype])
    return self._handle(path).get_tensor(name).astype(np.float32, copy=False)

  def unused(self) -> list[str]:
    """Names of tensors that no call has read (so far)."""
    return sorted(set(self._files) - self.read_names)

  def close(self) -> None:
    self._handles.clear()

  def __enter__(self) -> "SafetensorsReader":
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def _header(self, path: str) -> tuple[dict, int]:
    if path not in self._headers:
      self._headers[path] = _read_header(path)
    return self._headers[path]

  def _handle(self, path: str):
    if path not in self._handles:
      from safetensors import safe_open  # Imported on use: only conversion needs it.

      self._handles[path] = safe_open(path, framework="np")
    return self._handles[path]

  @staticmethod
  def _read_raw(path: str, entry: dict, data_start: int, ml_dtype: str) -> np.ndarray:
    """bf16/fp8 (which safetensors' numpy backend rejects) via a memory map and ml_dtypes."""
    import ml_dtypes

    start, end = entry["data_offsets"]
    if end == start:
      return np.zeros(entry["shape"], np.float32)
    raw = np.memmap(path, dtype=np.uint8, mode="r", offset=data_start + start, shape=(end - start,))
    x = raw.view(getattr(ml_dtypes, ml_dtype)).reshape(entry["shape"])
    return x.astype(np.float32)
