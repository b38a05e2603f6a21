"""TPU splash attention (Pallas), taken on TPU for long unmasked attention.

Off TPU the kernel runs only in Pallas' interpret mode (slow; tests only). Kept small on purpose:
no masks. Lengths are padded to the kernel's 128-row tiles (padded keys get their own segment id, so
no query sees them) and the head dim to the 128-lane width (zero columns change no logit); the
padding is sliced off. Under a mesh the kernel is not auto-partitioned: the caller wraps it in
shard_map over batch/heads (jaxgen/parallel).
"""

import jax
import jax.numpy as jnp
import numpy as np

_TILE = 128
_MIN_LEN = 1024  # Below this, XLA's attention is fast and the [T, S] logits are small.


def splash_preferred(q_len: int, kv_len: int, has_mask: bool) -> bool:
  """Whether auto-selection takes splash attention (on TPU): long, unmasked attention."""
  return not has_mask and min(q_len, kv_len) >= _MIN_LEN


def _round_up(n: int) -> int:
  return -(-n // _TILE) * _TILE


def _block(n: int) -> int:
  return next(b for b in (512, 256, 128) if n % b == 0)


def splash_attention(q: jax.Array, k: jax.Array, v: jax.Array,
                     interpret: bool = False) -> jax.Array:
  """Softmax(q·kᵀ/√H)·v with q: [B, T, N, H], k, v: [B, S, N, H] -> [B, T, N, H]."""
  from jax.experimental.pallas.ops.tpu import splash_attention as sa

  (_, t, n, h), s = q.shape, k.shape[1]
  tp, sp, hp = _round_up(t), _round_up(s), _round_up(h)
  # The kernel does not scale the logits; it takes one example as [N, L, H].
  q = q * np.asarray(1.0 / np.sqrt(h), q.dtype)

  def prep(x, length):
    x = jnp.pad(x, ((0, 0), (0, length - x.shape[1]), (0, 0), (0, hp - h)))
    return x.transpose(0, 2, 1, 3)

  q, k, v = prep(q, tp), prep(k, sp), prep(v, sp)
  segments = None
  if sp != s:
    # Padded keys sit in segment 1, every query in segment 0: no query attends to padding.
    segments = sa.SegmentIds(q=jnp.zeros((tp,), jnp.int32),
                             kv=(jnp.arange(sp) >= s).astype(jnp.int32))
  bq, bkv = _block(tp), _block(sp)
  sizes = sa.BlockSizes(block_q=bq, block_kv=bkv, block_kv_compute=bkv, block_q_dkv=bq,
                        block_kv_dkv=bkv, block_kv_dkv_compute=bkv, block_q_dq=bq, block_kv_dq=bkv)
  kernel = sa.make_splash_mha(sa.MultiHeadMask([sa.FullMask((tp, sp))] * n), block_sizes=sizes,
                              head_shards=1, q_seq_shards=1, interpret=interpret)
  out = jax.vmap(lambda q, k, v: kernel(q, k, v, segment_ids=segments))(q, k, v)
  return out.transpose(0, 2, 1, 3)[:, :t, :, :h]
