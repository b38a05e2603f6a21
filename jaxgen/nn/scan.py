"""Repeated blocks as one nn.scan over layers, with an optional rematerialisation policy by name.

Scanning compiles a block once whatever the depth; its params get a leading "layers" axis.
"""

from typing import Any

import flax.linen as nn
import jax

# "none": keep all activations; "full": recompute the whole block in the backward pass; the rest are
# jax.checkpoint_policies by name (e.g. "dots_saveable" keeps matmul outputs, recomputes the rest).
REMAT_POLICIES: dict[str, Any] = {
    "none": None,
    "full": jax.checkpoint_policies.nothing_saveable,
    "nothing_saveable": jax.checkpoint_policies.nothing_saveable,
    "dots_saveable": jax.checkpoint_policies.dots_saveable,
    "dots_with_no_batch_dims_saveable": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
    "everything_saveable": jax.checkpoint_policies.everything_saveable,
}


def check_remat_policy(name: str) -> None:
  """Raises ValueError unless name is one of REMAT_POLICIES."""
  if name not in REMAT_POLICIES:
    raise ValueError(f"remat_policy={name!r}; expected one of {sorted(REMAT_POLICIES)}")


def scan_layers(block: type[nn.Module], num_layers: int, in_axes: Any,
                remat_policy: str = "none") -> type[nn.Module]:
  """Returns a module class applying `block` num_layers times: (x, *xs) -> (x, None).

  block's __call__(x, *args) must return (x, None). in_axes says per extra arg whether it is shared
  (nn.broadcast) or sliced per layer (0).
  """
  check_remat_policy(remat_policy)
  if remat_policy != "none":
    block = nn.remat(block, policy=REMAT_POLICIES[remat_policy], prevent_cse=False)
  return nn.scan(
      block, variable_axes={"params": 0}, split_rngs={"params": True, "dropout": True},
      in_axes=in_axes, length=num_layers, metadata_params={nn.PARTITION_NAME: "layers"})
