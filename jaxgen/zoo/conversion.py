"""Helpers for `convert_params(config, read)`: shape-checked reads, name fallbacks, layer stacking.

`read(name)` returns one float32 numpy tensor by its reference state-dict name and raises KeyError
when the checkpoint has no such tensor.
"""

from collections.abc import Callable

import numpy as np

Reader = Callable[[str], np.ndarray]


class ShapeMismatchError(ValueError):
  """A checkpoint tensor's shape differs from what the model's config expects."""


def checked(read: Reader, what: str) -> Callable[[str, tuple[int, ...]], np.ndarray]:
  """`take(name, shape)`: `read(name)` as float32, raising ShapeMismatchError on a wrong shape."""
  def take(name: str, shape: tuple[int, ...]) -> np.ndarray:
    x = np.asarray(read(name), dtype=np.float32)
    if x.shape != tuple(shape):
      raise ShapeMismatchError(
          f"tensor {name!r} has shape {x.shape}; expected {tuple(shape)} for {what}")
    return x
  return take


def with_fallback(read: Reader, rename: Callable[[str], str]) -> Reader:
  """`read` that, for a name the checkpoint lacks, tries `rename(name)` (an older layout) too."""
  def wrapped(name: str) -> np.ndarray:
    try:
      return read(name)
    except KeyError:
      try:
        return read(rename(name))
      except KeyError:
        raise KeyError(f"tensor {name!r} (nor {rename(name)!r}) not found") from None
  return wrapped


def stack_layers(layer: Callable[[int], dict], num_layers: int) -> dict:
  """Per-layer param trees stacked on a leading `layers` axis (for nn.scan).

  Each stacked array is allocated once and filled layer by layer, so host memory holds the
  model once plus one layer.
  """
  import jax  # Only for tree utilities; keeps `jaxgen.zoo` importable without initialising JAX.

  first = layer(0)
  stacked = jax.tree.map(lambda x: np.empty((num_layers, *x.shape), np.float32), first)
  dst_leaves, treedef = jax.tree.flatten(stacked)
  for i in range(num_layers):
    tree = first if i == 0 else layer(i)
    src_leaves, src_def = jax.tree.flatten(tree)
    if src_def != treedef:
      raise ValueError(f"layer {i} converts to a different param structure than layer 0")
    for dst, src in zip(dst_leaves, src_leaves):
      dst[i] = src
  return stacked
