"""Device meshes from a config: axes data, fsdp, context, tensor; -1 fills the rest.

A mesh has ICI axis sizes (within a slice, or within a host for GPUs) and DCN sizes (across slices
or hosts). Its size along each axis is ici × dcn; the DCN factors are outermost, so collectives that
cross the slow network are the ones of the axes given DCN sizes (usually data, sometimes fsdp).
One device is a 1×1×1×1 mesh: the code path is the same everywhere.
"""

from collections.abc import Mapping, Sequence
import dataclasses
import math
from typing import Any

import jax
from jax.experimental import mesh_utils
from jax.sharding import AxisType, Mesh

AXES = ("data", "fsdp", "context", "tensor")


@dataclasses.dataclass(frozen=True)
class MeshConfig:
  """Mesh axis sizes; one ICI size and one DCN size may be -1 ("whatever devices are left")."""

  data: int = 1  # Batch split, params replicated (gradients all-reduced).
  fsdp: int = -1  # Batch split, params/optimizer state split too (ZeRO-3), gathered per layer.
  context: int = 1  # Token split (context/sequence parallelism); params split as by fsdp.
  tensor: int = 1  # Heads and MLP width split (Megatron); needs num_heads % tensor == 0.
  dcn_data: int = 1  # Factors across slices/hosts (multi-slice TPU, multi-node GPU).
  dcn_fsdp: int = 1
  dcn_context: int = 1
  dcn_tensor: int = 1

  def __post_init__(self):
    for group in (self.ici, self.dcn):
      for axis, size in zip(AXES, group):
        if not isinstance(size, int) or (size < 1 and size != -1):
          raise ValueError(f"mesh axis {axis}={size!r}; expected a positive int or -1 (fill)")
      if list(group).count(-1) > 1:
        raise ValueError(f"mesh sizes {dict(zip(AXES, group))} have more than one -1; at most one "
                         "axis may take the devices that are left")

  @property
  def ici(self) -> tuple[int, int, int, int]:
    return (self.data, self.fsdp, self.context, self.tensor)

  @property
  def dcn(self) -> tuple[int, int, int, int]:
    return (self.dcn_data, self.dcn_fsdp, self.dcn_context, self.dcn_tensor)

  @classmethod
  def parse(cls, text: "str | Mapping[str, int] | MeshConfig") -> "MeshConfig":
    """From "data=2,fsdp=-1,dcn_data=2" (or a dict of the same); unnamed axes keep defaults.

    Naming any ICI axis sets fsdp's default fill to 1, so "tensor=8" means tensor 8 alone.
    """
    if isinstance(text, MeshConfig):
      return text
    if isinstance(text, Mapping):
      items = dict(text)
    else:
      items = {}
      for part in filter(None, (p.strip() for p in str(text).split(","))):
        name, sep, value = part.partition("=")
        if not sep:
          raise ValueError(f"mesh={text!r}: {part!r} is not name=size (e.g. 'data=2,fsdp=-1')")
        try:
          items[name.strip()] = int(value)
        except ValueError:
          raise ValueError(f"mesh={text!r}: size {value!r} of {name!r} is not an int") from None
    fields = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(items) - set(fields))
    if unknown:
      raise ValueError(f"mesh={text!r} names {unknown}; expected axes among {fields}")
    if any(a in items for a in AXES) and "fsdp" not in items:
      items["fsdp"] = 1
    return cls(**items)

  def shape(self, num_devices: int,
            num_granules: int = 1) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(ici, dcn) sizes with -1 filled, for num_devices over num_granules slices/hosts."""
    dcn = _fill("dcn", self.dcn, num_granules, "slices (or processes)")
    ici = _fill("ici", self.ici, num_devices // math.prod(dcn), "devices per slice")
    if math.prod(ici) * math.prod(dcn) != num_devices:
      raise ValueError(
          f"mesh {self.describe(ici, dcn)} has {math.prod(ici) * math.prod(dcn)} devices; expected "
          f"the {num_devices} devices present (set one axis to -1 to take the rest)")
    return ici, dcn

  @staticmethod
  def describe(ici: Sequence[int], dcn: Sequence[int]) -> str:
    return " × ".join(f"{a}={i * d}" for a, i, d in zip(AXES, ici, dcn))


def _fill(what: str, sizes: Sequence[int], total: int, unit: str) -> tuple[int, ...]:
  """sizes with its -1 replaced so the product is total; raises unless the product divides total."""
  known = math.prod(s for s in sizes if s != -1)
  if total % known:
    named = dict(zip(AXES, sizes))
    raise ValueError(f"mesh {what} sizes {named} (product {known}) do not divide the {total} "
                     f"{unit}; expected sizes whose product divides {total}")
  return tuple(total // known if s == -1 else s for s in sizes)


def _num_granules(devices: Sequence[Any]) -> tuple[int, bool]:
  """(number of slices, or of processes where devices have no slice_index; whether by process)."""
  slices = {getattr(d, "slice_index", None) for d in devices}
  if None not in slices and len(slices) > 1:
    return len(slices), False
  return len({d.process_index for d in devices}), True


def make_mesh(config: MeshConfig | str | Mapping[str, int] = MeshConfig(),
              devices: Sequence[Any] | None = None) -> Mesh:
  """A Mesh over `devices` (default: all) with axes AXES, in the layout `config` asks for.

  Axis types are Auto: shardings are hints that XLA's partitioner (GSPMD/Shardy) propagates.
  """
  config = MeshConfig.parse(config)
  devices = list(jax.devices() if devices is None else devices)
  if math.prod(config.dcn) == 1 and -1 not in config.dcn:
    ici, dcn = config.shape(len(devices))
    array = mesh_utils.create_device_mesh(ici, devices, allow_split_physical_axes=True)
  else:
    granules, by_process = _num_granules(devices)
    ici, dcn = config.shape(len(devices), granules)
    if math.prod(dcn) != granules:
      raise ValueError(f"mesh dcn sizes {dict(zip(AXES, dcn))} (product {math.prod(dcn)}); "
                       f"expected product {granules}, the number of "
                       f"{'processes' if by_process else 'slices'}")
    array = mesh_utils.create_hybrid_device_mesh(
        ici, dcn, devices, process_is_granule=by_process, allow_split_physical_axes=True)
  return Mesh(array, AXES, axis_types=(AxisType.Auto,) * len(AXES))


def axis_size(mesh: Mesh, axes: str | Sequence[str] | None) -> int:
  """Number of shards along one mesh axis, a tuple of them, or None (1)."""
  if axes is None:
    return 1
  axes = (axes,) if isinstance(axes, str) else tuple(axes)
  return math.prod(mesh.shape[a] for a in axes)
