"""Attention as head-major einsums: the fast, low-memory forms on XLA:CPU.

jax.nn.dot_product_attention's portable path materialises the [B, N, T, S] logits and copies
them between layouts. Written head-major with a plain softmax, XLA:CPU fuses q·kᵀ, softmax and ·v
into one kernel that never holds the logits (~2x faster; 100 MB instead of 8.6 GB of scratch
at 16k tokens). That kernel slows down once the logits per head grow past ~1M (it streams all S
keys for every query tile), so from there on we run flash attention's loop (Dao et al. 2022,
Alg. 1): a scan over key blocks with an online softmax, whose [Q_CHUNK, BLOCK] logits stay
small. At 16k tokens it is ~2x faster for self-attention and 2.5x for cross-attention to 512 text
tokens. Small tiles (512 queries x 1,024 keys: 8 MB of logits for 4 heads) beat large ones
(8,192 x 2,048) by 12% at 16k tokens and 1.6x at 4k. With fewer than MIN_SIDE queries or keys the
loop's steps are too small to pay for themselves. Measurements: BENCHMARKS.md. Other backends
use their own kernels (cuDNN, splash).
"""

import jax
import jax.numpy as jnp
import numpy as np

BLOCK = 1024  # Most keys per step of the blocked form.
BLOCKED_LOGITS = 1 << 20  # From this many logits per head (T·S) on, the blocked form is used...
MIN_SIDE = 256  # ...if both T and S are at least this long.
Q_CHUNK = 512  # Queries per pass over the keys: bounds the [Q_CHUNK, BLOCK] logits per head.
_NEG = float(jnp.finfo(jnp.float32).min)  # Masked logit: finite, so masked rows never make NaN.


def einsum_attention(q: jax.Array, k: jax.Array, v: jax.Array,
                     mask: jax.Array | None = None) -> jax.Array:
  """softmax(q·kᵀ/√H)·v: q: [B, T, N, H], k, v: [B, S, N, H] -> [B, T, N, H].

  Logits and softmax in float32, probabilities in v's dtype, as jax.nn.dot_product_attention.
  mask: [B, S] bool, True where a key may be attended to, or None.
  """
  t, s = q.shape[1], k.shape[1]
  if t * s >= BLOCKED_LOGITS and min(t, s) >= MIN_SIDE:
    return blocked_attention(q, k, v, mask)
  return fused_attention(q, k, v, mask)


def fused_attention(q: jax.Array, k: jax.Array, v: jax.Array,
                    mask: jax.Array | None = None) -> jax.Array:
  """The one-kernel form, whatever the length: shapes and mask as einsum_attention."""
  h = q.shape[-1]
  q, k, v = (x.transpose(0, 2, 1, 3) for x in (q * np.asarray(h**-0.5, q.dtype), k, v))
  logits = jnp.einsum("bnth,bnsh->bnts", q, k, preferred_element_type=jnp.float32)
  if mask is not None:
    logits = jnp.where(mask[:, None, None, :], logits, _NEG)
  probs = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
  out = jnp.einsum("bnts,bnsh->bnth", probs, v, preferred_element_type=jnp.float32)
  return out.astype(q.dtype).transpose(0, 2, 1, 3)


def _pad_to(x: jax.Array, axis: int, multiple: int) -> jax.Array:
  pad = -x.shape[axis] % multiple
  if not pad:
    return x
  widths = [(0, 0)] * x.ndim
  widths[axis] = (0, pad)
  return jnp.pad(x, widths)


def blocked_attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array | None = None,
                      block: int = BLOCK, q_chunk: int = Q_CHUNK) -> jax.Array:
  """The same attention, one key block at a time with an online softmax: shapes as above.

  Queries go q_chunk at a time (scratch O(q_chunk · block) per head, whatever T and S). The keys
  are split into equal steps of at most `block` (512 text tokens: one step of 512, not one of
  1,024 half padding); lengths are padded to whole steps: padded keys are masked out and padded
  queries dropped.
  """
  b, t, n, h = q.shape
  s = k.shape[1]
  block = -(-s // -(-s // block))  # ceil(s / number of steps)
  # Without a mask or padded keys, skip the select on every logit.
  masked = mask is not None or s % block
  valid = jnp.ones((b, s), bool) if mask is None else mask.astype(bool)
  k, v, valid = _pad_to(k, 1, block), _pad_to(v, 1, block), _pad_to(valid, 1, block)
  nk = k.shape[1] // block
  # Keys, values and validity as per-block slices along a leading axis: [nk, B, N, block, H].
  k, v = (x.reshape(b, nk, block, n, h).transpose(1, 0, 3, 2, 4) for x in (k, v))
  valid = valid.reshape(b, nk, block).transpose(1, 0, 2)

  def attend(qc):  # [B, N, Tc, H] -> [B, N, Tc, H] f32
    def step(carry, kv):
      m, l, acc = carry  # running max, softmax denominator and unnormalised output, f32
      kj, vj, valid_j = kv
      logits = jnp.einsum("bnth,bnsh->bnts", qc, kj, preferred_element_type=jnp.float32)
      if masked:
        logits = jnp.where(valid_j[:, None, None, :], logits, _NEG)
      m_new = jnp.maximum(m, logits.max(-1))
      p = jnp.exp(logits - m_new[..., None])
      correction = jnp.exp(m - m_new)
      l = l * correction + p.sum(-1)
      pv = jnp.einsum("bnts,bnsh->bnth", p.astype(vj.dtype), vj,
                      preferred_element_type=jnp.float32)
      return (m_new, l, acc * correction[..., None] + pv), None

    rows = qc.shape[:3]
    init = (jnp.full(rows, _NEG, jnp.float32), jnp.zeros(rows, jnp.float32),
            jnp.zeros(rows + (h,), jnp.float32))
    (_, l, acc), _ = jax.lax.scan(step, init, (k, v, valid))
    return acc / l[..., None]

  q = (q * np.asarray(h**-0.5, q.dtype)).transpose(0, 2, 1, 3)  # [B, N, T, H]
  if t <= q_chunk:
    out = attend(q)
  else:
    q = _pad_to(q, 2, q_chunk)
    chunks = q.reshape(b, n, -1, q_chunk, h).transpose(2, 0, 1, 3, 4)
    out = jax.lax.map(attend, chunks).transpose(1, 2, 0, 3, 4).reshape(b, n, -1, h)[:, :, :t]
  return out.astype(q.dtype).transpose(0, 2, 1, 3)
