"""Logical-axis rules: which mesh axes shard each logical dim name the models use.

Rules are (logical name, mesh axes) pairs in priority order, as flax.linen.logical_axis_rules takes
them: each dim of a tensor takes its rule's mesh axes unless an earlier dim of the same tensor holds
one of them already. One rule set serves every layout; a mesh axis of size 1 shards nothing, so the
mesh shape alone picks data, FSDP, context, tensor or any mix.
"""

from collections.abc import Sequence
from typing import Any

from jax.sharding import Mesh

from jaxgen.parallel.mesh import AXES

Rules = tuple[tuple[str, str | tuple[str, ...] | None], ...]

# Activations name batch (and length) before embed, so their batch dim claims fsdp and their embed
# dim stays whole; params have neither, so their embed dim is split over fsdp and context: the
# devices that share one batch shard also share the params (FSDP / ZeRO-3, Rajbhandari et al. 2020;
# MaxText shards the context axis the same way). Heads and MLP width go to tensor (Megatron-LM,
# Shoeybi et al. 2019): attention and MLP then need one all-reduce each.
RULES: Rules = (
    ("batch", ("data", "fsdp")),
    ("length", "context"),
    ("heads", "tensor"),
    ("mlp", "tensor"),
    ("vocab", "tensor"),
    ("embed", ("fsdp", "context")),
    ("kv_length", None),
    ("kv", None),
    ("layers", None),
    ("frames", None),
    ("height", None),
    ("width", None),
    ("channels", None),
    ("conv_in", None),
    ("conv_out", None),
    ("norm", None),
)

LOGICAL_NAMES = tuple(name for name, _ in RULES)


def mesh_axes_of(rule_value: Any) -> tuple[str, ...]:
  """The mesh axis names a rule's right-hand side names: None, "a" or ("a", "b")."""
  if rule_value is None:
    return ()
  return (rule_value,) if isinstance(rule_value, str) else tuple(rule_value)


def make_rules(overrides: Sequence[tuple[str, Any]] | dict[str, Any] = ()) -> Rules:
  """RULES with some logical names remapped, e.g. {"embed": "fsdp"}; overrides keep RULES' order."""
  overrides = dict(overrides)
  names = dict(RULES)
  unknown = sorted(set(overrides) - set(names))
  if unknown:
    raise ValueError(f"axis rules name logical axes {unknown}; expected names among "
                     f"{list(LOGICAL_NAMES)}")
  names.update({k: (tuple(v) if isinstance(v, list) else v) for k, v in overrides.items()})
  return tuple(names.items())


def check_rules(rules: Sequence[tuple[str, Any]], mesh: Mesh) -> Rules:
  """Returns rules as a tuple; raises ValueError if a rule names a mesh axis `mesh` lacks."""
  rules = tuple((name, value) for name, value in rules)
  for name, value in rules:
    missing = [a for a in mesh_axes_of(value) if a not in mesh.axis_names]
    if missing:
      raise ValueError(f"axis rule ({name!r} -> {value!r}) names mesh axes {missing} that the mesh "
                       f"does not have; expected axes among {list(mesh.axis_names)}")
  return rules


__all__ = ["AXES", "RULES", "Rules", "LOGICAL_NAMES", "check_rules", "make_rules", "mesh_axes_of"]
