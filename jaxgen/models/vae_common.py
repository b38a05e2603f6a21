"""Pieces shared by the autoencoders: sharded conv/norm factories, the diagonal Gaussian posterior,
nearest upsampling, and conversion of PyTorch state dicts by walking our own parameter tree."""

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
Dtype = Any

ACTIVATION_AXES = ("batch", "height", "width", "channels")
VIDEO_ACTIVATION_AXES = ("batch", "frames", "height", "width", "channels")

# PyTorch's default conv/linear init, U(±1/sqrt(fan_in)), so that freshly initialised models
# behave like the reference ones (relevant when training a small VAE from scratch).
torch_default_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def conv(features: int, kernel_size: tuple[int, ...], dtype: Dtype, name: str,
         strides: int | tuple[int, ...] = 1, padding: Any = "VALID") -> nn.Conv:
  """A channels-last convolution with f32 params named (…, conv_in, conv_out)."""
  kernel_axes = (None,) * len(kernel_size) + ("conv_in", "conv_out")
  return nn.Conv(
      features, kernel_size, strides=strides, padding=padding, dtype=dtype,
      param_dtype=jnp.float32, name=name,
      kernel_init=nn.with_logical_partitioning(torch_default_init, kernel_axes),
      bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), ("conv_out",)))


def pointwise(features: int, dtype: Dtype, name: str) -> nn.Dense:
  """A 1×1 convolution / linear layer over the last axis, params named (conv_in, conv_out)."""
  return nn.Dense(
      features, dtype=dtype, param_dtype=jnp.float32, name=name,
      kernel_init=nn.with_logical_partitioning(torch_default_init, ("conv_in", "conv_out")),
      bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), ("conv_out",)))


def group_norm(num_groups: int, name: str, epsilon: float = 1e-6) -> nn.GroupNorm:
  """GroupNorm computed in float32 (statistics and affine), params named (norm,)."""
  return nn.GroupNorm(
      num_groups=num_groups, epsilon=epsilon, dtype=jnp.float32, param_dtype=jnp.float32,
      use_fast_variance=False, name=name,
      scale_init=nn.with_logical_partitioning(nn.initializers.ones_init(), ("norm",)),
      bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), ("norm",)))


def upsample_nearest2x(x: Array) -> Array:
  """Nearest-neighbour 2× upsampling of H and W: [..., H, W, C] -> [..., 2H, 2W, C]."""
  *lead, h, w, c = x.shape
  x = jnp.broadcast_to(x[..., :, None, :, None, :], (*lead, h, 2, w, 2, c))
  return x.reshape(*lead, 2 * h, 2 * w, c)


def single_head_attention(q: Array, k: Array, v: Array) -> Array:
  """Softmax attention with one head of width C (scale 1/√C): q, k, v: [B, L, C] -> [B, L, C]."""
  out = jax.nn.dot_product_attention(q[:, :, None, :], k[:, :, None, :], v[:, :, None, :])
  return out[:, :, 0, :]


# Posterior q(z|x) = N(mean, exp(logvar)) of the VAE (Kingma & Welling 2014); logvar is clipped to
# [-30, 20] exactly as the reference does before the distribution is used.
LOGVAR_MIN, LOGVAR_MAX = -30.0, 20.0


def split_moments(moments: Array) -> tuple[Array, Array]:
  """Encoder output [..., 2C] -> (mean, clipped logvar), each [..., C], in float32."""
  mean, logvar = jnp.split(moments.astype(jnp.float32), 2, axis=-1)
  return mean, jnp.clip(logvar, LOGVAR_MIN, LOGVAR_MAX)


def posterior_sample(key: Array, mean: Array, logvar: Array) -> Array:
  """z = mean + exp(logvar / 2) · ε with ε ~ N(0, I) drawn from `key`; all [..., C]."""
  eps = jax.random.normal(key, mean.shape, mean.dtype)
  return mean + jnp.exp(0.5 * logvar) * eps


def posterior_kl(mean: Array, logvar: Array) -> Array:
  """KL(N(mean, exp(logvar)) ‖ N(0, I)) summed over all but the batch axis: [B, ...] -> [B]."""
  kl = 0.5 * (jnp.square(mean) + jnp.exp(logvar) - 1.0 - logvar)
  return kl.reshape(kl.shape[0], -1).sum(axis=-1)


# ---- Conversion from PyTorch state dicts ------------------------------------------------------
# Our module names spell the reference's with list indices as `_i` suffixes (down_blocks_0 ↔
# down_blocks.0), so each Flax leaf knows its source tensor; conversion walks our tree.


def _leaves(tree: Mapping[str, Any],
            prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
  for key, value in tree.items():
    if isinstance(value, Mapping):
      yield from _leaves(value, prefix + (key,))
    else:
      yield prefix + (key,), value


_LEAF_NAMES = {"kernel": "weight", "scale": "weight", "bias": "bias", "gamma": "gamma"}


def source_name(path: tuple[str, ...]) -> str:
  """Flax param path -> PyTorch name: (up_blocks_0, conv1, kernel) -> up_blocks.0.conv1.weight."""
  modules = [re.sub(r"_(\d+)$", r".\1", p) for p in path[:-1]]
  return ".".join(modules + [_LEAF_NAMES[path[-1]]])


def _to_flax_layout(w: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
  """A PyTorch tensor -> our layout: kernels (O, I, *k) -> (*k, I, O), then reshaped to `shape`."""
  if len(shape) >= 2 and w.ndim >= 2:  # kernels
    if len(shape) == 2 and w.ndim > 2:  # a 1×1(×1) conv that we run as a dense layer
      w = w.reshape(w.shape[0], w.shape[1])
    w = np.transpose(w, tuple(range(2, w.ndim)) + (1, 0))
  return np.ascontiguousarray(w.reshape(shape) if w.size == int(np.prod(shape)) else w)


def param_shapes(module: nn.Module, *example: Any, method: Any = None) -> dict:
  """The (unboxed) shape tree of `module`'s params for `example` inputs, without allocating them."""
  variables = jax.eval_shape(lambda: module.init(jax.random.key(0), *example, method=method))
  return nn.unbox(variables["params"])


def convert_tree(shapes: Mapping[str, Any], read: Callable[[str], np.ndarray],
                 prefix: str = "") -> dict:
  """Fills a params tree shaped like `shapes` from `read(source_name)`, one tensor at a time."""
  params: dict = {}
  for path, leaf in _leaves(shapes):
    name = prefix + source_name(path)
    try:
      w = np.asarray(read(name), dtype=np.float32)
    except KeyError as e:
      raise KeyError(f"checkpoint has no tensor {name!r} (needed for Flax param "
                     f"{'/'.join(path)} of shape {tuple(leaf.shape)})") from e
    w = _to_flax_layout(w, tuple(leaf.shape))
    if w.shape != tuple(leaf.shape):
      raise ValueError(f"tensor {name!r} has shape {w.shape} after conversion, expected "
                       f"{tuple(leaf.shape)} for Flax param {'/'.join(path)}")
    node = params
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = w
  return params


def source_names(shapes: Mapping[str, Any], prefix: str = "") -> list[str]:
  """Every PyTorch state-dict name that `convert_tree` reads for a tree shaped like `shapes`."""
  return [prefix + source_name(path) for path, _ in _leaves(shapes)]


def count_params(shapes: Mapping[str, Any]) -> int:
  """Total number of scalars in a params (shape) tree."""
  return sum(int(np.prod(leaf.shape)) for _, leaf in _leaves(shapes))
