"""Model/mesh/batch compatibility checks that fail early, with the numbers needed to fix them."""

from typing import Any

from jax.sharding import Mesh
import flax.linen as nn

from jaxgen.parallel.mesh import axis_size
from jaxgen.parallel.rules import check_rules, Rules


def shards_of(mesh: Mesh, rules: Rules, name: str) -> tuple[Any, int]:
  """(mesh axes, shard count) a logical dim name alone is split into under rules."""
  axes = nn.logical_to_mesh_axes((name,), check_rules(rules, mesh))[0]
  return axes, axis_size(mesh, axes)


def check_model(config: Any, mesh: Mesh, rules: Rules) -> None:
  """Raises ValueError when a DiT config's heads do not split over the mesh as the rules ask.

  config: any config with num_heads (and attention_impl); Ulysses also splits heads over context.
  """
  axes, shards = shards_of(mesh, rules, "heads")
  heads = getattr(config, "num_heads", None)
  if heads is not None and heads % shards:
    raise ValueError(f"num_heads={heads} does not divide the {shards} shards of mesh axes "
                     f"{axes!r} that 'heads' maps to; expected num_heads a multiple of {shards} "
                     f"(mesh {dict(mesh.shape)})")
  context = mesh.shape.get("context", 1)
  if getattr(config, "attention_impl", None) == "ulysses" and heads and (heads // shards) % context:
    raise ValueError(f"attention_impl='ulysses' splits the {heads // shards} heads per tensor "
                     f"shard over context={context}; expected a multiple of {context} "
                     "(or use 'ring')")


def check_batch(batch_size: int, mesh: Mesh, rules: Rules) -> None:
  """Raises ValueError unless the global batch splits evenly over the mesh axes 'batch' maps to."""
  axes, shards = shards_of(mesh, rules, "batch")
  if batch_size <= 0 or batch_size % shards:
    raise ValueError(f"batch size {batch_size} does not split over mesh axes {axes!r} "
                     f"({shards} shards); expected a positive multiple of {shards}")


def check_tokens(num_tokens: int, mesh: Mesh, rules: Rules) -> None:
  """Raises ValueError unless the token count splits evenly over the axes 'length' maps to."""
  axes, shards = shards_of(mesh, rules, "length")
  if num_tokens % shards:
    raise ValueError(f"{num_tokens} tokens (frames·height·width after patching) do not split over "
                     f"mesh axes {axes!r} ({shards} shards); expected a multiple of {shards}")
