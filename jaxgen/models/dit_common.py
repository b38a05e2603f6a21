"""Helpers shared by the diffusion-transformer ports: config normalisation, input checks and
weight conversion."""

from collections.abc import Callable, Sequence
import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.nn.attention import check_implementation
from jaxgen.nn.scan import check_remat_policy

DTYPES = (jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))


def finish_config(config: Any) -> None:
  """In a frozen config's __post_init__: lists -> tuples, dtype names -> dtypes; validates names.

  So a config rebuilt from JSON (lists, "bfloat16") equals and hashes like the original.
  """
  for field in dataclasses.fields(config):
    value = getattr(config, field.name)
    if isinstance(value, list):
      object.__setattr__(config, field.name, tuple(value))
  try:
    dtype = jnp.dtype(config.dtype)
  except TypeError:
    dtype = None
  if dtype not in DTYPES:
    raise ValueError(f"dtype={config.dtype!r}; expected one of {[d.name for d in DTYPES]}")
  object.__setattr__(config, "dtype", dtype)
  check_remat_policy(config.remat_policy)
  check_implementation(config.attention_impl)


def check_shape(name: str, x: Any, expected: Sequence[int | None], meaning: str) -> None:
  """Raises ValueError unless x.shape matches expected (None = any size); meaning names the dims."""
  shape = tuple(np.shape(x))
  if len(shape) != len(expected) or any(e is not None and s != e for s, e in zip(shape, expected)):
    want = "[" + ", ".join("*" if e is None else str(e) for e in expected) + "]"
    raise ValueError(f"{name} has shape {list(shape)}; expected {want} ({meaning})")


def check_divisible(name: str, sizes: Sequence[int], patch: Sequence[int], meaning: str) -> None:
  """Raises ValueError unless every size is a positive multiple of its patch size."""
  if any(s < p or s % p for s, p in zip(sizes, patch)):
    raise ValueError(f"{name} has {meaning} {list(sizes)}; each must be a positive multiple of the "
                     f"patch size {list(patch)}")


class TensorReader:
  """Reads reference state-dict tensors one at a time as float32, checking names and shapes."""

  def __init__(self, read: Callable[[str], np.ndarray], model: str):
    self._read = read
    self._model = model

  def __call__(self, name: str, shape: Sequence[int]) -> np.ndarray:
    """The tensor `name`, which must have `shape`."""
    try:
      value = self._read(name)
    except KeyError as e:
      raise ValueError(f"the {self._model} checkpoint has no tensor {name!r}") from e
    value = np.asarray(value, dtype=np.float32)
    if value.shape != tuple(shape):
      raise ValueError(f"tensor {name!r} has shape {list(value.shape)}, but the {self._model} "
                       f"config expects {list(shape)}")
    return value

  def linear(self, prefix: str, d_in: int, d_out: int, bias: bool = True) -> dict[str, np.ndarray]:
    """torch Linear `prefix` (weight [out, in]) -> {"kernel": [in, out], "bias": [out]}."""
    out = {"kernel": self(f"{prefix}.weight", (d_out, d_in)).T}
    if bias:
      out["bias"] = self(f"{prefix}.bias", (d_out,))
    return out

  def attention(self, prefix: str, dim: int, heads: int, head_dim: int,
                context_dim: int | None = None, bias: bool = True,
                qk_norm: str | None = None) -> dict[str, Any]:
    """diffusers attention (to_q/k/v, to_out.0, norm_q/k) -> jaxgen.nn.Attention params.

    Self-attention (context_dim None) fuses q, k, v into one [D, 3, N, H] kernel; cross-attention
    fuses k, v into [D_c, 2, N, H].
    """
    inner = heads * head_dim

    def proj(name, d_in):
      p = self.linear(f"{prefix}.{name}", d_in, inner, bias)
      return {k: v.reshape(v.shape[:-1] + (heads, head_dim)) for k, v in p.items()}

    def fuse(names, d_in):
      ps = [proj(n, d_in) for n in names]
      return {k: np.stack([p[k] for p in ps], axis=-3) for k in ps[0]}

    if context_dim is None:
      out = {"qkv": fuse(("to_q", "to_k", "to_v"), dim)}
    else:
      out = {"q": proj("to_q", dim), "kv": fuse(("to_k", "to_v"), context_dim)}
    o = self.linear(f"{prefix}.to_out.0", inner, dim)
    out["out"] = {"kernel": o["kernel"].reshape(heads, head_dim, dim), "bias": o["bias"]}
    if qk_norm is not None:
      shape = (heads, head_dim) if qk_norm == "rms_norm_across_heads" else (head_dim,)
      for n in ("norm_q", "norm_k"):
        size = inner if qk_norm == "rms_norm_across_heads" else head_dim
        out[n] = {"scale": self(f"{prefix}.{n}.weight", (size,)).reshape(shape)}
    return out

  def patch_embed(self, prefix: str, in_channels: int, dim: int, patch: Sequence[int]) -> dict:
    """Conv patch embedding (weight [D, C, *p]) -> jaxgen.nn.PatchEmbed params ([prod(p)·C, D])."""
    w = self(f"{prefix}.weight", (dim, in_channels) + tuple(patch))
    n = len(patch)
    kernel = w.transpose(tuple(range(2, 2 + n)) + (1, 0)).reshape(-1, dim)
    return {"proj": {"kernel": kernel, "bias": self(f"{prefix}.bias", (dim,))}}


def stack_layers(num_layers: int, convert_layer: Callable[[int], dict]) -> dict:
  """Stacks per-layer param trees along a new leading axis for nn.scan, filling one layer at a time.

  The stacked arrays are allocated once, so host memory holds the model once plus one layer.
  """
  first = convert_layer(0)
  stacked = jax.tree.map(lambda a: np.empty((num_layers,) + a.shape, np.float32), first)

  def put(i, layer):
    jax.tree.map(lambda dst, src: dst.__setitem__(i, src), stacked, layer)

  put(0, first)
  del first
  for i in range(1, num_layers):
    put(i, convert_layer(i))
  return stacked


def count_params(params: Any) -> int:
  """Number of scalars in a (possibly abstract, possibly boxed) param tree."""
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))
