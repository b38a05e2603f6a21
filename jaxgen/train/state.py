"""The train state (step, params, optimizer state, EMA params) and its shardings on a device mesh.

One code path for any device count: params and batches are laid out with NamedShardings derived
from the models' logical axis names (`nn.logical_to_mesh_sharding`) under simple rules; on one
CPU device the mesh is 1×1 and every sharding is trivially replicated.
"""

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import flax.struct
import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec
import numpy as np
import optax

MESH_AXES = ("data", "fsdp")
# Logical axis -> mesh axis. Data parallel over "data", parameters sharded over "fsdp" along
# their widest named dims; everything unnamed is replicated.
RULES: tuple[tuple[str, Any], ...] = (
    ("batch", ("data", "fsdp")),
    ("embed", "fsdp"),
    ("conv_out", "fsdp"),
    ("vocab", None), ("mlp", None), ("heads", None), ("kv", None), ("length", None),
    ("kv_length", None), ("layers", None), ("frames", None), ("height", None), ("width", None),
    ("channels", None), ("conv_in", None), ("norm", None),
)


@flax.struct.dataclass
class TrainState:
  """Everything a checkpoint holds; `step` is the number of updates applied."""
  step: jax.Array
  params: Any
  opt_state: Any
  ema_params: Any


def make_mesh(data: int = -1, fsdp: int = 1, devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A ("data", "fsdp") mesh; data=-1 takes every device not used by fsdp."""
  devices = list(jax.devices() if devices is None else devices)
  if data == -1:
    if len(devices) % fsdp:
      raise ValueError(f"fsdp: expected a divisor of the {len(devices)} devices, got {fsdp}")
    data = len(devices) // fsdp
  if data * fsdp > len(devices) or data < 1 or fsdp < 1:
    raise ValueError(f"mesh: data={data} × fsdp={fsdp} needs {data * fsdp} devices; "
                     f"{len(devices)} available")
  return Mesh(np.array(devices[:data * fsdp]).reshape(data, fsdp), MESH_AXES)


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Sharding of [B, ...] arrays: the batch over every mesh axis."""
  return NamedSharding(mesh, PartitionSpec(MESH_AXES))


def create(init_params: Callable[[jax.Array], Any], tx: optax.GradientTransformation,
           key: jax.Array, mesh: Mesh, rules=RULES) -> tuple[TrainState, Any]:
  """A fresh state initialised on the mesh by one jitted program, and the state's shardings.

  `init_params(key)` returns boxed params (`nn.with_logical_partitioning`); optax states inherit
  the boxes, so every leaf's sharding comes from its logical names (unnamed leaves replicate).
  """
  def init(key):
    params = init_params(key)
    return TrainState(step=jax.numpy.zeros((), jax.numpy.int32), params=params,
                      opt_state=tx.init(params), ema_params=params)

  boxed = jax.eval_shape(init, key)
  shardings = nn.logical_to_mesh_sharding(nn.get_partition_spec(boxed), mesh, rules)
  with jax.set_mesh(mesh):
    state = jax.jit(lambda k: nn.unbox(init(k)), out_shardings=shardings)(key)
  return state, shardings


def num_params(params: Any) -> int:
  """Number of scalars in a params pytree."""
  return int(sum(np.prod(p.shape) for p in jax.tree.leaves(params)))
