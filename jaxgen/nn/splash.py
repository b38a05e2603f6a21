"""TPU splash attention (Pallas), the path taken on TPU when the shapes fit the kernel's tiles.

It cannot run off TPU except in Pallas' interpret mode (slow; tests only). Kept small on purpose:
no masks, no segment ids, sequence lengths in multiples of 128 and a head dim of a multiple of 128
(lane width); everything else goes through jax.nn.dot_product_attention. Under a mesh, the kernel is
not auto-partitioned: wrap the caller in shard_map over batch/heads (jaxgen/parallel does).
"""

import jax
import numpy as np

_LANES = 128


def splash_fits(q_len: int, kv_len: int, head_dim: int, has_mask: bool) -> bool:
  """Whether splash attention supports these shapes (see the module docstring)."""
  return (not has_mask and q_len % _LANES == 0 and kv_len % _LANES == 0
          and head_dim % _LANES == 0)


def _block(n: int) -> int:
  return next(b for b in (512, 256, 128) if n % b == 0)


def splash_attention(q: jax.Array, k: jax.Array, v: jax.Array, interpret: bool = False) -> jax.Array:
  """Softmax(q·kᵀ/√H)·v with q: [B, T, N, H], k, v: [B, S, N, H] -> [B, T, N, H]."""
  from jax.experimental.pallas.ops.tpu import splash_attention as sa

  (_, t, n, h), s = q.shape, k.shape[1]
  if not splash_fits(t, s, h, has_mask=False):
    raise ValueError(f"splash attention needs lengths and head dim in multiples of {_LANES}, "
                     f"got q_len={t}, kv_len={s}, head_dim={h}")
  bq, bkv = _block(t), _block(s)
  sizes = sa.BlockSizes(block_q=bq, block_kv=bkv, block_kv_compute=bkv, block_q_dkv=bq,
                        block_kv_dkv=bkv, block_kv_dkv_compute=bkv, block_q_dq=bq, block_kv_dq=bkv)
  mask = sa.MultiHeadMask([sa.FullMask((t, s))] * n)
  kernel = sa.make_splash_mha(mask, block_sizes=sizes, head_shards=1, q_seq_shards=1,
                              interpret=interpret)
  # The kernel takes one example as [N, L, H] and does not scale the logits.
  q = q * np.asarray(1.0 / np.sqrt(h), q.dtype)
  out = jax.vmap(kernel)(q.transpose(0, 2, 1, 3), k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3))
  return out.transpose(0, 2, 1, 3)
