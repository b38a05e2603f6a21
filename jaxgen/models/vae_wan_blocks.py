"""Blocks of Wan 2.1's causal video VAE (Wan Team 2025, "Wan: Open and Advanced Large-Scale Video
Generative Models", §3.1), run one temporal chunk at a time.

Every causal layer maps (x, cache) -> (y, new_cache): `cache` holds the trailing input frames that
the next chunk's temporal kernel reads (2 for a size-3 kernel). `cache=None` marks the first chunk,
whose past is zeros (causal padding) — except in the temporal resamplers, which pass the first
chunk through untouched, so that the first frame is encoded and decoded on its own (paper §3.1).
Caches are dicts keyed by submodule name, so the scan over chunks carries a plain pytree.
"""

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.models import vae_common as vc

Array = jax.Array
Cache = Any  # an array, a dict of caches, or None on the first chunk


def _sub(cache: Cache, name: str) -> Cache:
  return None if cache is None else cache[name]


def _constrain(x: Array) -> Array:
  return nn.with_logical_constraint(x, vc.VIDEO_ACTIVATION_AXES)


def _conv3d_xla(x: Array, kernel: Array, stride_t: int) -> Array:
  """Valid-in-time, same-in-space 3D conv: x: [B, T, H, W, C], kernel: [kt, kh, kw, C, F] ->
  [B, (T - kt) // stride_t + 1, H, W, F]."""
  kh, kw = kernel.shape[1:3]
  return jax.lax.conv_general_dilated(
      x, kernel, window_strides=(stride_t, 1, 1),
      padding=((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2)),
      dimension_numbers=("NDHWC", "DHWIO", "NDHWC"))


def _conv3d_as_2d(x: Array, kernel: Array, stride_t: int) -> Array:
  """_conv3d_xla as a sum over temporal taps of 2D convs on frames (same shapes).

  XLA:CPU runs 2D convs through its fast conv library and 3D ones through a generic loop: 2-20x
  faster per conv (most for few channels: the RGB output conv), the decode ~2x (BENCHMARKS.md).
  """
  kt, kh, kw = kernel.shape[:3]
  b, t, h, w, c = x.shape
  t_out = (t - kt) // stride_t + 1
  y = None
  for tau in range(kt):
    frames = x[:, tau:tau + (t_out - 1) * stride_t + 1:stride_t].reshape(b * t_out, h, w, c)
    tap = jax.lax.conv_general_dilated(
        frames, kernel[tau], window_strides=(1, 1),
        padding=((kh // 2, kh // 2), (kw // 2, kw // 2)),
        dimension_numbers=("NHWC", "HWIO", "NHWC"))
    y = tap if y is None else y + tap
  return y.reshape(b, t_out, h, w, -1)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv3d_cpu(x: Array, kernel: Array, stride_t: int) -> Array:
  """The fast forward on CPU; its gradient is the 3D conv's, which compiles ~30% faster than the
  taps' (training on CPU is for tests, inference is what runs long)."""
  return _conv3d_as_2d(x, kernel, stride_t)


def _conv3d_cpu_fwd(x, kernel, stride_t):
  return _conv3d_as_2d(x, kernel, stride_t), (x, kernel)


def _conv3d_cpu_bwd(stride_t, residuals, g):
  _, vjp = jax.vjp(lambda x, k: _conv3d_xla(x, k, stride_t), *residuals)
  return vjp(g)


_conv3d_cpu.defvjp(_conv3d_cpu_fwd, _conv3d_cpu_bwd)


def conv3d(x: Array, kernel: Array, stride_t: int = 1) -> Array:
  """_conv3d_xla, computed by temporal taps on CPU (see _conv3d_as_2d)."""
  if jax.default_backend() == "cpu":
    return _conv3d_cpu(x, kernel, stride_t)
  return _conv3d_xla(x, kernel, stride_t)


class CausalConv3d(nn.Module):
  """3D conv that sees only past frames: [B, T, H, W, C] -> [B, T', H, W, F].

  T' = (past + T - kt) // stride_t + 1; spatially it is 'same'-padded.
  """
  features: int
  kernel_size: tuple[int, int, int]
  dtype: Any
  stride_t: int = 1
  past_frames: int | None = None  # frames of context carried between chunks; default kt - 1

  @nn.compact
  def __call__(self, x: Array, cache: Array | None = None) -> tuple[Array, Array | None]:
    past = self.kernel_size[0] - 1 if self.past_frames is None else self.past_frames
    kernel = self.param(
        "kernel", nn.with_logical_partitioning(vc.torch_default_init,
                                               (None, None, None, "conv_in", "conv_out")),
        tuple(self.kernel_size) + (x.shape[-1], self.features), jnp.float32)
    bias = self.param(
        "bias", nn.with_logical_partitioning(nn.initializers.zeros_init(), ("conv_out",)),
        (self.features,), jnp.float32)
    x = x.astype(self.dtype)
    if past:
      prev = (jnp.zeros((x.shape[0], past) + x.shape[2:], x.dtype) if cache is None
              else cache.astype(x.dtype))
      x = jnp.concatenate([prev, x], axis=1)
    y = conv3d(x, kernel.astype(self.dtype), self.stride_t)
    return y + bias.astype(self.dtype), (x[:, x.shape[1] - past:] if past else None)


class RMSNorm(nn.Module):
  """x / ‖x‖₂ over channels · √C · γ, in float32 (the reference's F.normalize): [..., C]."""

  @nn.compact
  def __call__(self, x: Array) -> Array:
    c = x.shape[-1]
    gamma = self.param(
        "gamma", nn.with_logical_partitioning(nn.initializers.ones_init(), ("norm",)), (c,),
        jnp.float32)
    x32 = x.astype(jnp.float32)
    norm = jnp.sqrt(jnp.sum(jnp.square(x32), axis=-1, keepdims=True))
    return (x32 / jnp.maximum(norm, 1e-12) * (c ** 0.5 * gamma)).astype(x.dtype)


class ResidualBlock(nn.Module):
  """(RMSNorm, SiLU, causal 3×3×3 conv) ×2 plus a 1×1×1 shortcut: [B, T, H, W, C] -> [..., F]."""
  features: int
  dtype: Any

  @nn.compact
  def __call__(self, x: Array, cache: Cache) -> tuple[Array, Cache]:
    h = x
    if x.shape[-1] != self.features:
      h = vc.pointwise(self.features, self.dtype, "conv_shortcut")(x)
    x = nn.silu(RMSNorm(name="norm1")(x))
    conv1 = CausalConv3d(self.features, (3, 3, 3), self.dtype, name="conv1")
    x, c1 = conv1(x, _sub(cache, "conv1"))
    x = nn.silu(RMSNorm(name="norm2")(x))
    conv2 = CausalConv3d(self.features, (3, 3, 3), self.dtype, name="conv2")
    x, c2 = conv2(x, _sub(cache, "conv2"))
    return _constrain(x + h), {"conv1": c1, "conv2": c2}


class AttentionBlock(nn.Module):
  """Single-head self-attention within each frame, with a residual: [B, T, H, W, C]."""
  dtype: Any

  @nn.compact
  def __call__(self, x: Array) -> Array:
    b, t, h, w, c = x.shape
    y = RMSNorm(name="norm")(x).reshape(b * t, h * w, c)
    q, k, v = jnp.split(vc.pointwise(3 * c, self.dtype, "to_qkv")(y), 3, axis=-1)
    y = vc.pointwise(c, self.dtype, "proj")(vc.single_head_attention(q, k, v))
    return x + y.reshape(b, t, h, w, c)


class Resample(nn.Module):
  """Spatial 2× up/down sampling, optionally with a causal temporal 2× (modes as the reference's).

  upsample2d/3d: [B, T, H, W, C] -> [B, T or 2T, 2H, 2W, C/2];
  downsample2d/3d: [B, T, H, W, C] -> [B, T or T/2, H/2, W/2, C].
  The temporal variants leave the first chunk's frame count alone.
  """
  mode: str  # upsample2d | upsample3d | downsample2d | downsample3d
  dtype: Any

  @nn.compact
  def __call__(self, x: Array, cache: Cache) -> tuple[Array, Cache]:
    c = x.shape[-1]
    new_cache = None
    if self.mode == "upsample3d":
      # A causal conv makes 2C channels per frame = two output frames each (Wan §3.1). On the
      # first chunk it is skipped and the zero cache stands for its past on the next chunk.
      if cache is None:
        new_cache = jnp.zeros((x.shape[0], 2) + x.shape[2:], x.dtype)
      else:
        x, new_cache = CausalConv3d(2 * c, (3, 1, 1), self.dtype, name="time_conv")(x, cache)
        b, t, h, w, _ = x.shape
        x = x.reshape(b, t, h, w, 2, c).transpose(0, 1, 4, 2, 3, 5).reshape(b, 2 * t, h, w, c)
    if self.mode.startswith("upsample"):
      x = vc.upsample_nearest2x(x)
      x = vc.conv(c // 2, (3, 3), self.dtype, "resample_1", padding=1)(x)
    else:
      x = jnp.pad(x, ((0, 0), (0, 0), (0, 1), (0, 1), (0, 0)))
      x = vc.conv(c, (3, 3), self.dtype, "resample_1", strides=2)(x)
    if self.mode == "downsample3d":
      # Stride-2 causal conv over (last frame of the previous chunk, this chunk); the first chunk
      # (the first frame) passes through alone.
      if cache is None:
        new_cache = x[:, -1:]
      else:
        x, new_cache = CausalConv3d(c, (3, 1, 1), self.dtype, stride_t=2, past_frames=1,
                                    name="time_conv")(x, cache)
    return _constrain(x), new_cache


class MidBlock(nn.Module):
  """resnet, per-frame attention, resnet: [B, T, h, w, C]."""
  dtype: Any

  @nn.compact
  def __call__(self, x: Array, cache: Cache) -> tuple[Array, Cache]:
    c = x.shape[-1]
    x, c0 = ResidualBlock(c, self.dtype, name="resnets_0")(x, _sub(cache, "resnets_0"))
    x = AttentionBlock(self.dtype, name="attentions_0")(x)
    x, c1 = ResidualBlock(c, self.dtype, name="resnets_1")(x, _sub(cache, "resnets_1"))
    return x, {"resnets_0": c0, "resnets_1": c1}


class UpBlock(nn.Module):
  """`num_layers` residual blocks, then an optional Resample: [B, T, H, W, C]."""
  features: int
  num_layers: int
  upsample_mode: str | None
  dtype: Any

  @nn.compact
  def __call__(self, x: Array, cache: Cache) -> tuple[Array, Cache]:
    new_cache = {}
    for j in range(self.num_layers):
      name = f"resnets_{j}"
      x, new_cache[name] = ResidualBlock(self.features, self.dtype, name=name)(x, _sub(cache, name))
    if self.upsample_mode is not None:
      name = "upsamplers_0"
      x, new_cache[name] = Resample(self.upsample_mode, self.dtype, name=name)(x, _sub(cache, name))
    return x, new_cache

