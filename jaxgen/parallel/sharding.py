"""Shardings from logical names, sharded init, jit under a mesh, and global batches from hosts.

The flow (flax lm1b, MaxText): `jax.eval_shape(init)` gives the params' shapes in their logical-axis
boxes -> `nn.get_partition_spec` -> `nn.logical_to_mesh_sharding` under the rules ->
`jax.jit(init, out_shardings=...)`, so every device creates only its own shard. Steps are jitted
with in/out shardings and traced under the mesh and rules, so the models' activation constraints
(`nn.with_logical_constraint`) become sharding annotations.
"""

from collections.abc import Callable, Iterator, Mapping, Sequence
import contextlib
import math
from typing import Any

from flax.core import meta
import flax.linen as nn
import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec
import numpy as np

from jaxgen.parallel.mesh import axis_size
from jaxgen.parallel.rules import check_rules, Rules


@contextlib.contextmanager
def use(mesh: Mesh, rules: Sequence[tuple[str, Any]]) -> Iterator[None]:
  """Makes `mesh` the ambient mesh and `rules` the logical-axis rules, for tracing and running."""
  rules = check_rules(rules, mesh)
  with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
    yield


def replicated(mesh: Mesh) -> NamedSharding:
  """The same full copy on every device."""
  return NamedSharding(mesh, PartitionSpec())


def logical_sharding(names: Sequence[str | None], mesh: Mesh, rules: Rules) -> NamedSharding:
  """The NamedSharding of one array whose dims have these logical names."""
  return NamedSharding(mesh, nn.logical_to_mesh_axes(tuple(names), check_rules(rules, mesh)))


def logical_shardings(tree: Any, mesh: Mesh, rules: Rules) -> Any:
  """NamedShardings for a tree whose leaves are logical boxes (nn.LogicallyPartitioned) or plain
  arrays (replicated); the result has the tree's unboxed structure."""
  specs = nn.get_partition_spec(tree)
  return nn.logical_to_mesh_sharding(specs, mesh, check_rules(rules, mesh))


def check_divisible(shapes: Any, shardings: Any, what: str = "params") -> None:
  """Raises ValueError naming the leaf when a dim is not a multiple of the shards it is split in."""
  flat, _ = jax.tree_util.tree_flatten_with_path(shapes)
  flat_shardings = jax.tree.leaves(shardings, is_leaf=lambda x: isinstance(x, NamedSharding))
  for (path, leaf), sharding in zip(flat, flat_shardings):
    for dim, (size, axes) in enumerate(zip(np.shape(leaf), sharding.spec)):
      shards = axis_size(sharding.mesh, axes)
      if size % shards:
        name = jax.tree_util.keystr(path)
        raise ValueError(
            f"{what}{name} has shape {list(np.shape(leaf))}: dim {dim} (size {size}) is split over "
            f"mesh axes {axes!r} = {shards} shards; expected a multiple of {shards} (change the "
            f"mesh or the axis rules)")


def unbox(tree: Any) -> Any:
  """Values of a tree of logical boxes (no constraint applied: safe on abstract values too)."""
  is_box = lambda x: isinstance(x, meta.AxisMetadata)
  value = lambda x: x.value if isinstance(x, meta.Partitioned) else x.unbox()
  return jax.tree.map(lambda x: value(x) if is_box(x) else x, tree, is_leaf=is_box)


def init_sharded(init_fn: Callable[..., Any], mesh: Mesh, rules: Rules,
                 *args: Any) -> tuple[Any, Any]:
  """Runs init_fn(*args) (which may return logical boxes) with each output created on its shards.

  Returns (values, shardings): values unboxed and placed, shardings the matching NamedSharding tree.
  """
  with use(mesh, rules):
    abstract = jax.eval_shape(init_fn, *args)
    shardings = logical_shardings(abstract, mesh, rules)
    check_divisible(unbox(abstract), shardings, "init output")
    values = jax.jit(lambda *a: unbox(init_fn(*a)), out_shardings=shardings)(*args)
  return values, shardings


def abstract_sharded(init_fn: Callable[..., Any], mesh: Mesh, rules: Rules,
                     *args: Any) -> tuple[Any, Any]:
  """(ShapeDtypeStructs with their shardings, shardings) of init_fn's outputs; allocates nothing.

  For ahead-of-time compilation and for restoring checkpoints onto the mesh.
  """
  with use(mesh, rules):
    abstract = jax.eval_shape(init_fn, *args)
    shardings = logical_shardings(abstract, mesh, rules)
  shapes = unbox(abstract)
  check_divisible(shapes, shardings, "init output")
  structs = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                         shapes, shardings)
  return structs, shardings


class Sharded:
  """A jitted function traced and run under its mesh and rules; `.lower(...)` for AOT compiling."""

  def __init__(self, fn: Callable[..., Any], mesh: Mesh, rules: Rules, *, in_shardings: Any = None,
               out_shardings: Any = None, donate_argnums: int | Sequence[int] = (),
               static_argnums: int | Sequence[int] = (),
               compiler_options: dict[str, Any] | None = None):
    self.mesh, self.rules = mesh, check_rules(rules, mesh)
    kwargs = {"compiler_options": compiler_options}
    if in_shardings is not None:
      kwargs["in_shardings"] = in_shardings
    if out_shardings is not None:
      kwargs["out_shardings"] = out_shardings
    self.jitted = jax.jit(fn, donate_argnums=donate_argnums, static_argnums=static_argnums,
                          **kwargs)

  def __call__(self, *args: Any) -> Any:
    with use(self.mesh, self.rules):
      return self.jitted(*args)

  def lower(self, *args: Any) -> Any:
    with use(self.mesh, self.rules):
      return self.jitted.lower(*args)


def batch_names(ndim: int) -> tuple[str | None, ...]:
  """Logical names of a [B, ...] input: the batch dim, the rest whole."""
  return ("batch",) + (None,) * (ndim - 1)


def batch_shardings(batch: Mapping[str, Any], mesh: Mesh, rules: Rules) -> dict[str, NamedSharding]:
  """Per-key shardings of a batch of [B, ...] arrays (or ShapeDtypeStructs): split along batch."""
  return {k: logical_sharding(batch_names(len(np.shape(v))), mesh, rules) for k, v in batch.items()}


def host_rows(sharding: NamedSharding, global_batch: int) -> slice:
  """The contiguous rows [start, stop) of a [global_batch, ...] array this process must supply."""
  rows = set()
  for index in sharding.addressable_devices_indices_map((global_batch,)).values():
    rows.update(range(*index[0].indices(global_batch)))
  rows = sorted(rows)
  if rows != list(range(rows[0], rows[-1] + 1)):
    raise ValueError(f"this process holds rows {rows} of the batch: not one contiguous block; "
                     "expected a mesh whose batch axes keep each process's devices together")
  return slice(rows[0], rows[-1] + 1)


def global_batch(host_batch: Mapping[str, np.ndarray], mesh: Mesh, rules: Rules,
                 global_size: int) -> dict[str, jax.Array]:
  """This process's rows ([b, ...] numpy: rows host_rows(...)) -> global [global_size, ...]."""
  out = {}
  for key, value in host_batch.items():
    value = np.asarray(value)
    sharding = logical_sharding(batch_names(value.ndim), mesh, rules)
    rows = host_rows(sharding, global_size)
    if value.shape[0] != rows.stop - rows.start:
      raise ValueError(f"host batch {key!r} has {value.shape[0]} rows; expected "
                       f"{rows.stop - rows.start} (rows {rows.start}..{rows.stop - 1} of "
                       f"{global_size}) for this process")
    out[key] = jax.make_array_from_process_local_data(sharding, value,
                                                      (global_size,) + value.shape[1:])
  return out


def per_device_bytes(tree: Any) -> dict[Any, int]:
  """Bytes each device holds of a tree of jax.Arrays: {device: bytes}."""
  total: dict[Any, int] = {}
  for leaf in jax.tree.leaves(tree):
    for shard in leaf.addressable_shards:
      total[shard.device] = total.get(shard.device, 0) + shard.data.nbytes
  return total


def shard_count(sharding: NamedSharding, ndim: int) -> int:
  """Into how many distinct pieces a sharding splits an array of ndim dims."""
  spec = tuple(sharding.spec) + (None,) * (ndim - len(sharding.spec))
  return math.prod(axis_size(sharding.mesh, axes) for axes in spec)
