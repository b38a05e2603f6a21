"""Training tasks by name: each supplies init, loss, samples and its data sources."""

from typing import Any

import jax.numpy as jnp
import ml_collections

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def compute_dtype(config: ml_collections.ConfigDict) -> Any:
  """The compute dtype named by config.dtype (params stay float32)."""
  if config.dtype not in DTYPES:
    raise ValueError(f"config.dtype: expected one of {sorted(DTYPES)}, got {config.dtype!r}")
  return DTYPES[config.dtype]


def make(config: ml_collections.ConfigDict) -> Any:
  """The task object for config.task ('vae', 't2v' or 'superres')."""
  if config.task == "vae":
    from jaxgen.train.tasks import vae
    return vae.VAETask(config, compute_dtype(config))
  if config.task == "t2v":
    from jaxgen.train.tasks import t2v
    return t2v.T2VTask(config, compute_dtype(config))
  if config.task == "superres":
    from jaxgen.train.tasks import superres
    return superres.SuperResTask(config, compute_dtype(config))
  raise ValueError(f"config.task: expected 'vae', 't2v' or 'superres', got {config.task!r}")
