"""Multi-head self- and cross-attention via jax.nn.dot_product_attention, QK-norm and RoPE."""

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.nn.axes import HEADS, KV_HEADS, constrain
from jaxgen.nn.einsum_attention import einsum_attention
from jaxgen.nn.linear import Linear
from jaxgen.nn.norms import RMSNorm
from jaxgen.nn.rope import apply_rope
from jaxgen.nn.splash import splash_attention, splash_preferred

# None chooses by backend: "einsum" on CPU, splash on TPU for long unmasked attention, else JAX's
# choice. "xla" is jax.nn.dot_product_attention's portable path; "einsum" is the head-major form
# XLA:CPU fuses into one kernel (einsum_attention.py); "cudnn" is cuDNN flash attention (GPU,
# bf16/fp16); "splash" forces the TPU kernel (unmasked attention only); "ring" and "ulysses" split
# self-attention over the mesh's context axis (jaxgen/parallel/context.py), and "ring" never holds
# the whole [T, S] logits.
IMPLEMENTATIONS = (None, "xla", "einsum", "cudnn", "splash", "ring", "ulysses")
QK_NORMS = (None, "rms_norm", "rms_norm_across_heads")


def check_implementation(implementation: str | None) -> None:
  """Raises ValueError unless implementation is one of IMPLEMENTATIONS."""
  if implementation not in IMPLEMENTATIONS:
    raise ValueError(f"attention implementation={implementation!r}; expected one of "
                     f"{IMPLEMENTATIONS}")


def dot_product_attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array | None = None,
                          implementation: str | None = None) -> jax.Array:
  """softmax(q·kᵀ/√H)·v, softmax in f32: q: [B, T, N, H], k, v: [B, S, N, H] -> [B, T, N, H].

  mask: [B, S] bool, True where a key may be attended to (text padding), or None.
  """
  check_implementation(implementation)
  if implementation in ("ring", "ulysses"):
    from jaxgen.parallel import context  # pylint: disable=g-import-not-at-top (it imports nn)
    return context.attention(q, k, v, mask, implementation)
  on_tpu = jax.default_backend() == "tpu"
  if implementation == "splash" and not (on_tpu and mask is None):
    raise ValueError(f"implementation='splash' needs a TPU backend (have "
                     f"{jax.default_backend()!r}) and no mask (mask given: {mask is not None})")
  auto_splash = on_tpu and splash_preferred(q.shape[1], k.shape[1], mask is not None)
  if implementation == "splash" or (implementation is None and auto_splash):
    return splash_attention(q, k, v)
  if implementation == "einsum" or (implementation is None and jax.default_backend() == "cpu"):
    return einsum_attention(q, k, v, None if mask is None else mask.astype(bool))
  if mask is not None:
    mask = mask[:, None, None, :].astype(bool)
  return jax.nn.dot_product_attention(q, k, v, mask=mask, implementation=implementation)


class Attention(nn.Module):
  """x: [B, L, D] attends to itself (context None, fused QKV) or to context: [B, S, D_c] (fused KV).

  Returns [B, L, D]. mask: [B, S] bool over context tokens; rope: (cos, sin) [L, H/2] for
  self-attention. qk_norm "rms_norm_across_heads" normalises q and k over all heads at once
  (Wan 2.1), "rms_norm" per head.
  """

  num_heads: int
  head_dim: int
  qk_norm: str | None = None  # One of QK_NORMS.
  qk_norm_eps: float = 1e-6
  use_bias: bool = True  # Bias of the q/k/v projections (the output projection always has one).
  zero_init_out: bool = False  # Zero output projection: a new layer starts as the identity.
  dtype: Any = jnp.float32
  implementation: str | None = None  # One of IMPLEMENTATIONS.

  @nn.compact
  def __call__(self, x: jax.Array, context: jax.Array | None = None, mask: jax.Array | None = None,
               rope: tuple[jax.Array, jax.Array] | None = None) -> jax.Array:
    if self.qk_norm not in QK_NORMS:
      raise ValueError(f"qk_norm={self.qk_norm!r}; expected one of {QK_NORMS}")
    n, h = self.num_heads, self.head_dim
    proj = functools.partial(Linear, use_bias=self.use_bias, dtype=self.dtype)
    if context is None:
      qkv = proj((3, n, h), ("embed", None, "heads", "kv"), name="qkv")(x)
      q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
      kv_names = HEADS
    else:
      q = proj((n, h), ("embed", "heads", "kv"), name="q")(x)
      kv = proj((2, n, h), ("embed", None, "heads", "kv"), name="kv")(context)
      k, v = kv[:, :, 0], kv[:, :, 1]
      kv_names = KV_HEADS
    if self.qk_norm is not None:
      across = self.qk_norm == "rms_norm_across_heads"
      norm = functools.partial(RMSNorm, eps=self.qk_norm_eps, num_axes=2 if across else 1,
                               axes=("heads", "kv") if across else ("kv",))
      q = norm(name="norm_q")(q).astype(self.dtype)
      k = norm(name="norm_k")(k).astype(self.dtype)
    if rope is not None:
      q, k = apply_rope(q, *rope), apply_rope(k, *rope)
    q, k, v = constrain(q, HEADS), constrain(k, kv_names), constrain(v, kv_names)
    out = constrain(dot_product_attention(q, k, v, mask, self.implementation), HEADS)
    init = nn.initializers.zeros_init() if self.zero_init_out else nn.initializers.xavier_uniform()
    return Linear(x.shape[-1], ("heads", "kv", "embed"), in_dims=2, dtype=self.dtype,
                  kernel_init=init, name="out")(out)
