"""Context (sequence) parallelism for attention over the token axis, and memory-lean attention.

Tokens of a long video are split over the mesh's `context` axis. Two ways to attend across shards:

* Ring attention (Liu et al. 2023, "Ring Attention with Blockwise Transformers"): each device keeps
  its query block and passes its key/value block around the ring with `ppermute`; partial results
  merge by their log-sum-exp (online softmax: Milakov & Gimelshein 2018; Rabe & Staats 2021).
  Within a device, queries and keys are cut into tiles, and the backward pass recomputes each
  tile's probabilities from the saved log-sum-exp (FlashAttention-2, Dao 2023), so no device ever
  holds more than one [chunk, chunk] tile of logits per head, forward or backward. With a context
  axis of size 1 this is memory-lean attention on one device.
* Ulysses (Jacobs et al. 2023, DeepSpeed-Ulysses): an all-to-all turns "all heads, T/c tokens"
  into "heads/c, all T tokens", attention runs locally (jax.nn.dot_product_attention: cuDNN flash
  where available), and a second all-to-all turns it back. Needs heads per tensor shard % c == 0.

Both run per device inside `jax.shard_map` over the ambient mesh (`jax.set_mesh`), with batch and
head dims split as the current logical-axis rules say. Outside a mesh they reduce to local
attention, so one code path serves one device and a pod.
"""

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec

from jaxgen.nn.axes import HEADS

CONTEXT_AXIS = "context"
IMPLEMENTATIONS = ("ring", "ulysses")
MAX_CHUNK = 1024  # Query/key tile of ring attention: logits [B, N, chunk, chunk] at a time.
_MASKED = -0.7 * float(jnp.finfo(jnp.float32).max)  # A logit exp() maps to 0, with no inf - inf.


def _chunk(length: int, max_chunk: int) -> int:
  """The largest divisor of length that is at most max_chunk (the whole length if it is tiny)."""
  if length <= max_chunk:
    return length
  best = max(d for d in range(1, max_chunk + 1) if length % d == 0)
  return best if best * 8 >= max_chunk else length


def _tile(x, size):
  """[B, L, ...] -> [L / size, B, size, ...]: tiles along the token axis, scanned over."""
  return None if x is None else x.reshape(
      (x.shape[0], x.shape[1] // size, size) + x.shape[2:]).swapaxes(0, 1)


def _untile(x):
  """[n, B, size, ...] -> [B, n · size, ...]."""
  x = x.swapaxes(0, 1)
  return x.reshape((x.shape[0], x.shape[1] * x.shape[2]) + x.shape[3:])


def _logits(q, k, mask, scale):
  """q: [B, T, N, H], k: [B, S, N, H], mask: [B, S] -> [B, N, T, S] f32 (masked keys ~ -inf)."""
  s = jnp.einsum("btnh,bsnh->bnts", q, k, preferred_element_type=jnp.float32) * scale
  return s if mask is None else jnp.where(mask[:, None, None, :], s, _MASKED)


def _merge(o_a, lse_a, o_b, lse_b):
  """Softmax over the union of two key sets from each set's normalised output and log-sum-exp."""
  lse = jnp.logaddexp(lse_a, lse_b)
  w_a = jnp.exp(lse_a - lse).transpose(0, 2, 1)[..., None]
  w_b = jnp.exp(lse_b - lse).transpose(0, 2, 1)[..., None]
  return o_a * w_a + o_b * w_b, lse


def _forward(q, k, v, mask, chunk):
  """Attention of q: [B, T, N, H] to one key block, tiled: (o [B, T, N, H] f32 normalised within
  the block, lse [B, N, T] f32). Only one [B, N, chunk, chunk] tile of logits lives at a time."""
  b, t, n, h = q.shape
  scale = 1.0 / math.sqrt(h)
  qc, kc = _chunk(t, chunk), _chunk(k.shape[1], chunk)
  keys = (_tile(k, kc), _tile(v, kc), _tile(mask, kc))

  def per_query_tile(q_i):
    def body(carry, key_tile):
      k_j, v_j, m_j = key_tile
      s = _logits(q_i, k_j, m_j, scale)
      lse = jax.nn.logsumexp(s, axis=-1)
      p = jnp.exp(s - lse[..., None]).astype(v_j.dtype)
      o = jnp.einsum("bnts,bsnh->btnh", p, v_j, preferred_element_type=jnp.float32)
      return _merge(*carry, o, lse), None

    init = (jnp.zeros(q_i.shape, jnp.float32), jnp.full((b, n, qc), -jnp.inf, jnp.float32))
    return jax.lax.scan(body, init, keys)[0]

  o, lse = jax.lax.map(per_query_tile, _tile(q, qc))
  return _untile(o), _untile(lse.transpose(0, 1, 3, 2)).transpose(0, 2, 1)


def _backward(q, k, v, mask, o, lse, do, chunk):
  """This key block's share of the gradients, from the final output o and log-sum-exp lse over
  all keys (FlashAttention-2 backward, Dao 2023): (dq, dk, dv) f32, tiled like _forward."""
  b, t, n, h = q.shape
  scale = 1.0 / math.sqrt(h)
  qc, kc = _chunk(t, chunk), _chunk(k.shape[1], chunk)
  do = do.astype(jnp.float32)
  delta = jnp.sum(do * o, axis=-1)  # [B, T, N]: rowsum(dO ∘ O) = Σ_s p·dp.
  keys = (_tile(k, kc), _tile(v, kc), _tile(mask, kc))
  queries = (_tile(q, qc), _tile(do, qc), _tile(lse.transpose(0, 2, 1), qc), _tile(delta, qc))

  def per_query_tile(dkv, query_tile):
    q_i, do_i, lse_i, delta_i = query_tile
    lse_i, delta_i = lse_i.transpose(0, 2, 1)[..., None], delta_i.transpose(0, 2, 1)[..., None]

    def body(dq, key_tile):
      k_j, v_j, m_j = key_tile
      p = jnp.exp(_logits(q_i, k_j, m_j, scale) - lse_i)  # [B, N, qc, kc], the true softmax
      dv = jnp.einsum("bnts,btnh->bsnh", p, do_i)
      dp = jnp.einsum("btnh,bsnh->bnts", do_i, v_j, preferred_element_type=jnp.float32)
      ds = p * (dp - delta_i) * scale
      dq = dq + jnp.einsum("bnts,bsnh->btnh", ds, k_j, preferred_element_type=jnp.float32)
      dk = jnp.einsum("bnts,btnh->bsnh", ds, q_i, preferred_element_type=jnp.float32)
      return dq, (dk, dv)

    dq, (dk, dv) = jax.lax.scan(body, jnp.zeros(q_i.shape, jnp.float32), keys)
    return (dkv[0] + dk, dkv[1] + dv), dq

  zeros = jnp.zeros((k.shape[1] // kc, b, kc, n, h), jnp.float32)
  (dk, dv), dq = jax.lax.scan(per_query_tile, (zeros, zeros), queries)
  return _untile(dq), _untile(dk), _untile(dv)


def _rotate(x, axis, size):
  """Device i's block goes to device i + 1 (mod size) along the mesh axis."""
  perm = [(i, (i + 1) % size) for i in range(size)]
  return None if x is None else jax.lax.ppermute(x, axis, perm)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5, 6))
def _ring(q, k, v, mask, axis, size, chunk):
  """Per device: q, k, v: [b, T/c, n, H] -> [b, T/c, n, H]; key/value blocks travel the ring.

  size 1 (no context axis) is tiled attention on one device.
  """
  return _ring_forward(q, k, v, mask, axis, size, chunk)[0]


def _ring_forward(q, k, v, mask, axis, size, chunk):
  o, lse = _forward(q, k, v, mask, chunk)
  k_j, v_j, m_j = k, v, mask
  for _ in range(size - 1):
    # After i hops device d holds the block of device d - i: after size - 1 it has seen them all.
    k_j, v_j, m_j = _rotate(k_j, axis, size), _rotate(v_j, axis, size), _rotate(m_j, axis, size)
    o, lse = _merge(o, lse, *_forward(q, k_j, v_j, m_j, chunk))
  return o.astype(q.dtype), (q, k, v, mask, o, lse)


def _ring_backward(axis, size, chunk, residuals, do):
  q, k, v, mask, o, lse = residuals
  dq = jnp.zeros(q.shape, jnp.float32)
  dk, dv = jnp.zeros(k.shape, jnp.float32), jnp.zeros(v.shape, jnp.float32)
  k_j, v_j, m_j = k, v, mask
  for i in range(size):
    dq_j, dk_j, dv_j = _backward(q, k_j, v_j, m_j, o, lse, do, chunk)
    dq, dk, dv = dq + dq_j, dk + dk_j, dv + dv_j
    if size > 1:
      # A block's gradient travels with it; after size hops it is back with its owner, complete.
      dk, dv = _rotate(dk, axis, size), _rotate(dv, axis, size)
      if i < size - 1:
        k_j, v_j, m_j = _rotate(k_j, axis, size), _rotate(v_j, axis, size), _rotate(m_j, axis, size)
  return dq.astype(q.dtype), dk.astype(k.dtype), dv.astype(v.dtype), None


_ring.defvjp(_ring_forward, _ring_backward)


def blockwise_attention(q, k, v, mask=None, max_chunk: int = MAX_CHUNK):
  """Tiled attention on one device, O(T·chunk) memory forward and backward: q: [B, T, N, H],
  k, v: [B, S, N, H], mask: [B, S] bool -> [B, T, N, H]."""
  return _ring(q, k, v, None if mask is None else mask.astype(bool), None, 1, max_chunk)


def _ulysses(q, k, v, mask, *, axis: str):
  """Per device: [b, T/c, n, H] -> all-to-all -> [b, T, n/c, H], attend, and back."""
  to_heads = lambda x: jax.lax.all_to_all(x, axis, split_axis=2, concat_axis=1, tiled=True)
  q, k, v = to_heads(q), to_heads(k), to_heads(v)
  if mask is not None:
    mask = jax.lax.all_gather(mask, axis, axis=1, tiled=True)[:, None, None, :]
  o = jax.nn.dot_product_attention(q, k, v, mask=mask)
  return jax.lax.all_to_all(o, axis, split_axis=1, concat_axis=2, tiled=True)


def _names(axes) -> tuple[str, ...]:
  """Mesh axis names of one PartitionSpec entry."""
  return () if axes is None else (axes,) if isinstance(axes, str) else tuple(axes)


def _fit(spec: tuple, shape: tuple[int, ...], mesh) -> PartitionSpec:
  """spec with the axes of any dim they do not divide dropped (that dim is then gathered)."""
  return PartitionSpec(*(
      axes if size % math.prod(mesh.shape[a] for a in _names(axes)) == 0 else None
      for size, axes in zip(shape, spec)))


def attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array | None = None,
              implementation: str = "ring", max_chunk: int = MAX_CHUNK) -> jax.Array:
  """softmax(q·kᵀ/√H)·v split over the ambient mesh's context axis: q: [B, T, N, H],
  k, v: [B, S, N, H], mask: [B, S] bool (True = attend) -> [B, T, N, H].

  Context-parallel when T == S (self-attention) and both split evenly over the context axis; cross-
  attention to a short text keeps its keys whole on every device and its queries split as they are.
  """
  if implementation not in IMPLEMENTATIONS:
    raise ValueError(f"implementation={implementation!r}; expected one of {IMPLEMENTATIONS}")
  mesh = jax.sharding.get_abstract_mesh()
  size = 1 if mesh.empty or CONTEXT_AXIS not in mesh.axis_names else mesh.shape[CONTEXT_AXIS]
  t, s = q.shape[1], k.shape[1]
  if size == 1 or t != s or t % size:
    if implementation == "ulysses":
      mask4 = None if mask is None else mask[:, None, None, :].astype(bool)
      return jax.nn.dot_product_attention(q, k, v, mask=mask4)
    return blockwise_attention(q, k, v, mask, max_chunk)

  spec = tuple(nn.logical_to_mesh_axes(HEADS))
  if any(CONTEXT_AXIS in _names(axes) for axes in spec[:1] + spec[2:]):
    raise ValueError(f"context-parallel attention puts tokens on the {CONTEXT_AXIS!r} mesh axis, "
                     f"but the axis rules also shard batch or heads over it ({spec}); expected "
                     "rules that leave it to 'length'")
  qkv_spec = _fit((spec[0], CONTEXT_AXIS) + spec[2:], q.shape, mesh)
  mask_spec = PartitionSpec(qkv_spec[0], CONTEXT_AXIS)
  if implementation == "ulysses":
    heads = q.shape[2] // math.prod(mesh.shape[a] for a in _names(qkv_spec[2]))
    if heads % size:
      raise ValueError(f"attention implementation='ulysses' splits the {heads} heads per device "
                       f"over the context axis ({size}); expected heads divisible by {size} "
                       "(use 'ring')")
    fn = lambda q, k, v, m: _ulysses(q, k, v, m, axis=CONTEXT_AXIS)
  else:
    fn = lambda q, k, v, m: _ring(q, k, v, m, CONTEXT_AXIS, size, max_chunk)
  in_specs = (qkv_spec, qkv_spec, qkv_spec, None if mask is None else mask_spec)
  mask = None if mask is None else mask.astype(bool)
  return jax.shard_map(fn, in_specs=in_specs, out_specs=qkv_spec, check_vma=False)(q, k, v, mask)
