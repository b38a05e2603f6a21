"""Deterministic, resumable batches from a random-access data source onto a device mesh.

The batch at global step k is a pure function of (seed, k): epoch e = k // steps_per_epoch reads
the examples in the order of a permutation drawn from (seed, e), dropping the remainder. A
curriculum (Bengio et al. 2009) may replace the first batches, or some rows of each, with
ones drawn the same way from a subset of easy examples. A run killed and restarted at step k
therefore sees exactly the batches it would have seen. Each process reads only the rows of the
global batch that its own devices hold and the global `jax.Array`s are assembled with
`jax.make_array_from_process_local_data`.
"""

import collections
from collections.abc import Iterator, Mapping, Sequence
import concurrent.futures
import itertools
from typing import Any

import jax
from jax.sharding import NamedSharding, PartitionSpec
import numpy as np

from jaxgen.data import vocab

# Per-example fields that become [B, ...] arrays (the caption becomes input_ids/attention_mask).
ARRAY_KEYS = ("video", "num_objects", "digit", "color", "direction")


def batch_sharding(sharding: NamedSharding) -> NamedSharding:
  """Sharding of any [B, ...] array: the batch axis as in `sharding`, other axes replicated."""
  if not isinstance(sharding, NamedSharding):
    raise ValueError(f"sharding: expected a jax.sharding.NamedSharding, got {sharding!r}")
  spec = sharding.spec[0] if len(sharding.spec) else None
  return NamedSharding(sharding.mesh, PartitionSpec(spec))


def process_rows(index_map: Mapping[Any, tuple[slice, ...]], batch_size: int) -> np.ndarray:
  """Sorted global batch rows int [b] held by the devices of `index_map` (device -> indices)."""
  rows = set()
  for index in index_map.values():
    rows.update(range(*index[0].indices(batch_size)))
  return np.array(sorted(rows), np.int64)


class Loader:
  """Resumable batch iterator over `source[i] -> dict` laid out on `sharding`'s batch axes."""

  def __init__(self, source: Sequence[Mapping[str, Any]], *, global_batch_size: int,
               sharding: NamedSharding, seed: int = 0, tokenizer: Any = None,
               max_length: int = vocab.MAX_LENGTH, keys: Sequence[str] = ARRAY_KEYS,
               prefetch: int = 2,
               curriculum: tuple[Sequence[int], int, Sequence[int] | None] | None = None):
    """`tokenizer`: a transformers tokenizer for the captions, or None to skip them.
    `curriculum`: (subset, steps, rows): for the first `steps` steps, the batch rows `rows`
    (None: all) come from the source indices `subset` only."""
    self.sharding = batch_sharding(sharding)
    shards = self.sharding.mesh.shape
    spec = self.sharding.spec[0]
    axes = () if spec is None else (spec,) if isinstance(spec, str) else tuple(spec)
    num_shards = int(np.prod([shards[a] for a in axes]))
    if not isinstance(global_batch_size, int) or global_batch_size <= 0 or (
        global_batch_size % num_shards):
      raise ValueError(f"global_batch_size: expected a positive multiple of {num_shards} (the "
                       f"mesh's batch axes {axes}), got {global_batch_size!r}")
    if len(source) < global_batch_size:
      raise ValueError(f"global_batch_size: expected at most the {len(source)} examples of the "
                       f"source, got {global_batch_size}")
    if max_length < 2:
      raise ValueError(f"max_length: expected at least 2 (for <s> and </s>), got {max_length}")
    if prefetch < 0:
      raise ValueError(f"prefetch: expected a non-negative int, got {prefetch}")
    subset, self.curriculum_steps, rows = (), 0, np.arange(global_batch_size)
    if curriculum is not None:
      subset, self.curriculum_steps, given_rows = curriculum
      subset = np.asarray(subset, np.int64)
      if given_rows is not None:
        rows = np.asarray(given_rows, np.int64)
      if not isinstance(self.curriculum_steps, int) or self.curriculum_steps < 0:
        raise ValueError(f"curriculum: expected (subset, steps, rows) with steps a non-negative "
                         f"int, got steps={self.curriculum_steps!r}")
      if rows.ndim != 1 or not len(rows) or len(np.unique(rows)) != len(rows) or np.any(
          (rows < 0) | (rows >= global_batch_size)):
        raise ValueError(f"curriculum: expected rows of distinct batch positions in [0, "
                         f"{global_batch_size}), got {np.asarray(given_rows).tolist()!r}")
      if subset.ndim != 1 or len(subset) < len(rows) or np.any(
          (subset < 0) | (subset >= len(source))):
        raise ValueError(f"curriculum: expected a subset of at least {len(rows)} indices "
                         f"in [0, {len(source)}), got {len(subset)} indices in "
                         f"[{subset.min(initial=0)}, {subset.max(initial=0)}]")
    self.subset, self.curriculum_rows = subset, rows
    self.source, self.seed, self.tokenizer = source, seed, tokenizer
    self.global_batch_size, self.max_length, self.keys = global_batch_size, max_length, tuple(keys)
    self.prefetch = prefetch
    self.steps_per_epoch = len(source) // global_batch_size
    self.rows = process_rows(
        self.sharding.addressable_devices_indices_map((global_batch_size,)), global_batch_size)

  def indices(self, step: int) -> np.ndarray:
    """Source indices int [global_batch_size] of the batch at global step `step`."""
    if step < 0:
      raise ValueError(f"step: expected a non-negative int, got {step}")
    epoch, k = divmod(step, self.steps_per_epoch)
    order = np.random.default_rng([self.seed, epoch]).permutation(len(self.source))
    index = order[k * self.global_batch_size:(k + 1) * self.global_batch_size]
    if step < self.curriculum_steps:
      # The subset's own epochs, len(rows) examples a step. An example may then appear twice in
      # a step's batch, in a curriculum row and another: rare, and harmless to the gradient.
      r = len(self.curriculum_rows)
      epoch, k = divmod(step, len(self.subset) // r)
      easy = self.subset[np.random.default_rng([self.seed, epoch, 1]).permutation(
          len(self.subset))]
      index[self.curriculum_rows] = easy[k * r:(k + 1) * r]
    return index

  def host_batch(self, step: int) -> dict[str, np.ndarray]:
    """This process's rows of the batch at `step`: numpy arrays [b, ...] and captions."""
    index = self.indices(step)[self.rows]
    getitems = getattr(self.source, "__getitems__", None)
    examples = getitems(list(map(int, index))) if getitems else [self.source[int(i)]
                                                                  for i in index]
    batch = {key: np.stack([np.asarray(e[key]) for e in examples]) for key in self.keys}
    batch["index"] = index.astype(np.int32)
    if self.tokenizer is not None:
      captions = [e["caption"] for e in examples]
      captions = [c.decode() if isinstance(c, bytes) else str(c) for c in captions]
      tokens = self.tokenizer(captions, padding="max_length", truncation=True,
                              max_length=self.max_length, return_tensors="np")
      batch["input_ids"] = tokens["input_ids"].astype(np.int32)
      batch["attention_mask"] = tokens["attention_mask"].astype(np.int32)
    return batch

  def to_global(self, host_batch: Mapping[str, np.ndarray]) -> dict[str, jax.Array]:
    """Global arrays [global_batch_size, ...] on the mesh from this process's rows."""
    return {key: jax.make_array_from_process_local_data(
                self.sharding, value, (self.global_batch_size, *value.shape[1:]))
            for key, value in host_batch.items()}

  def batch(self, step: int) -> dict[str, jax.Array]:
    """The global batch at `step`: video uint8 [B, T, H, W, 3], input_ids int32 [B, L], ..."""
    return self.to_global(self.host_batch(step))

  def __call__(self, start_step: int = 0,
               num_steps: int | None = None) -> Iterator[tuple[int, dict[str, jax.Array]]]:
    """Yields (step, batch) from `start_step`, reading `prefetch` batches ahead on a thread."""
    if start_step < 0:
      raise ValueError(f"start_step: expected a non-negative int, got {start_step}")
    steps = (itertools.count(start_step) if num_steps is None
             else iter(range(start_step, start_step + num_steps)))
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
      pending = collections.deque(
          (s, pool.submit(self.host_batch, s)) for s in itertools.islice(steps, self.prefetch + 1))
      while pending:
        step, future = pending.popleft()
        pending.extend((s, pool.submit(self.host_batch, s)) for s in itertools.islice(steps, 1))
        yield step, self.to_global(future.result())

