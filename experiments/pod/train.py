"""Pod training of a Wan 2.1-style video DiT on precomputed latents: the same command on every host.

  # TPU pod slice: every worker runs it; JAX finds its peers from the TPU metadata.
  gcloud compute tpus tpu-vm ssh $TPU --zone=$ZONE --worker=all --command="cd jaxgen && \
    python experiments/pod/train.py --config=experiments/pod/configs/tpu_v5p_64.py \
    --workdir=gs://$BUCKET/wan14b"
  # Multi-node GPU: one process per host driving all its GPUs. Under SLURM (srun) JAX finds its
  # peers itself; elsewhere say who is who on each host:
  python experiments/pod/train.py --config=experiments/pod/configs/gpu_h100_2x8.py \
    --workdir=/shared/wan14b --coordinator=$HOST0:12345 --num_processes=2 --process_id=$RANK
  # Overrides: --config.steps=10 --config.mesh=fsdp=-1,context=2 --config.batch_size=8

Each process builds the same global program (jit with in/out shardings over the whole mesh), reads
only the batch rows its own devices hold, and the rows become one global array
(jax.make_array_from_process_local_data). Checkpoints are Orbax, written by all processes together;
a restarted job resumes from the last one.
"""

import dataclasses
import json
import os
import time
from typing import Any

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags


def _define_flags() -> dict[str, Any]:
  """The command line; defined only when run as a script, so importing this file defines none."""
  return {
      "config": config_flags.DEFINE_config_file("config", None, "Experiment config file."),
      "workdir": flags.DEFINE_string("workdir", None, "Checkpoints and metrics.jsonl (shared)."),
      "coordinator": flags.DEFINE_string("coordinator", None,
                                         "host:port of process 0 (GPU without SLURM)."),
      "num_processes": flags.DEFINE_integer("num_processes", None, "Number of processes."),
      "process_id": flags.DEFINE_integer("process_id", None, "This process's index."),
  }


class SyntheticLatents:
  """Row r of step k is a pure function of (seed, k, r): any process can make exactly its rows."""

  def __init__(self, latent_shape: tuple[int, ...], text_len: int, text_dim: int, seed: int):
    self.latent_shape, self.text_len, self.text_dim = latent_shape, text_len, text_dim
    self.seed = seed

  def rows(self, step: int, rows: slice) -> dict[str, Any]:
    import numpy as np

    out = {"latents": [], "context": []}
    for r in range(rows.start, rows.stop):
      rng = np.random.default_rng([self.seed, step, r])
      out["context"].append(rng.standard_normal((self.text_len, self.text_dim), np.float32))
      # A smooth field tied to the text, so there is something to learn.
      base = np.tanh(out["context"][-1][:1, : self.latent_shape[-1]])
      noise = 0.1 * rng.standard_normal(self.latent_shape, np.float32)
      out["latents"].append(base.reshape((1,) * (len(self.latent_shape) - 1) + (-1,)) + noise)
    return {k: np.stack(v) for k, v in out.items()}


class NpyLatents:
  """Precomputed latents.npy [N, t, h, w, C] and context.npy [N, S, D] (memory-mapped)."""

  def __init__(self, directory: str, seed: int):
    import numpy as np

    self.latents = np.load(os.path.join(directory, "latents.npy"), mmap_mode="r")
    self.context = np.load(os.path.join(directory, "context.npy"), mmap_mode="r")
    self.seed = seed

  def rows(self, step: int, rows: slice, global_batch: int) -> dict[str, Any]:
    import numpy as np

    per_epoch = len(self.latents) // global_batch
    epoch, k = divmod(step, per_epoch)
    order = np.random.default_rng([self.seed, epoch]).permutation(len(self.latents))
    index = np.sort(order[k * global_batch:(k + 1) * global_batch][rows])
    return {"latents": np.asarray(self.latents[index], np.float32),
            "context": np.asarray(self.context[index], np.float32)}


def train(config: Any, workdir: str, devices: Any = None,
          compiler_options: dict[str, Any] | None = None) -> dict[str, Any]:
  """Trains config.steps steps (resuming from workdir) on devices (default: all, every process);
  returns the losses and whether the last checkpoint restores equal to the live state."""
  import jax
  import jax.numpy as jnp
  import numpy as np
  import optax
  import orbax.checkpoint as ocp

  from jaxgen.diffusion import schedules
  from jaxgen.models import wan
  from jaxgen.parallel import checks, mesh as mesh_lib, rules as rules_lib, sharding, steps

  # Mesh and rules.
  mesh = mesh_lib.make_mesh(config.mesh, devices)
  rules = rules_lib.make_rules(dict(config.rules))
  log = (lambda *a: print(*a, flush=True)) if jax.process_index() == 0 else (lambda *a: None)
  log(f"mesh {dict(mesh.shape)} over {jax.process_count()} processes, {mesh.size} devices")

  # Model.
  model_config = dataclasses.replace(wan.PRESETS[config.model], **dict(config.model_overrides))
  checks.check_model(model_config, mesh, rules)
  checks.check_batch(config.batch_size, mesh, rules)
  model = wan.Wan(model_config)
  t, h, w, c = config.latent_shape
  tokens = (t // model_config.patch_size[0]) * (h // model_config.patch_size[1]) * (
      w // model_config.patch_size[2])
  if model_config.attention_impl in ("ring", "ulysses"):
    checks.check_tokens(tokens, mesh, rules)
  example = (jnp.zeros((1, t, h, w, c)), jnp.zeros((1,)),
             jnp.zeros((1, config.text_len, model_config.text_dim)))

  # Optimizer and sharded state (resumed when a checkpoint exists).
  lr = optax.warmup_cosine_decay_schedule(0.0, config.lr, config.warmup_steps, max(config.steps, 1))
  tx = optax.chain(optax.clip_by_global_norm(config.grad_clip),
                   optax.adamw(lr, weight_decay=config.weight_decay))
  abstract, state_sh = steps.abstract_train_state(model, tx, mesh, rules, example)
  manager = ocp.CheckpointManager(
      os.path.join(os.path.abspath(workdir), "checkpoints"),
      options=ocp.CheckpointManagerOptions(max_to_keep=config.keep_checkpoints,
                                           save_interval_steps=config.checkpoint_every))
  start = manager.latest_step()
  if start is None:
    state, _ = steps.init_train_state(model, tx, mesh, rules, example, jax.random.key(config.seed))
    start = 0
  else:
    state = manager.restore(start, args=ocp.args.StandardRestore(abstract))
    log(f"resumed from step {start}")

  # Input: each process supplies its own rows of the global batch.
  if config.data_dir:
    source = NpyLatents(config.data_dir, config.seed)
    rows_of = lambda step, rows: source.rows(step, rows, config.batch_size)
  else:
    source = SyntheticLatents(tuple(config.latent_shape), config.text_len, model_config.text_dim,
                              config.seed)
    rows_of = source.rows
  batch_abstract = {"latents": np.zeros((config.batch_size, t, h, w, c), np.float32),
                    "context": np.zeros((config.batch_size, config.text_len, model_config.text_dim),
                                        np.float32)}
  batch_sh = sharding.batch_shardings(batch_abstract, mesh, rules)
  rows = sharding.host_rows(batch_sh["latents"], config.batch_size)

  # Update step.
  schedule = schedules.FlowSchedule(shift=config.flow_shift)
  loss_fn = steps.diffusion_loss_fn(model, schedule, "flow")
  train_step = steps.shard_train_step(steps.train_step_fn(loss_fn, tx), mesh, rules, state_sh,
                                      batch_sh, compiler_options)
  key = jax.random.key(config.seed + 1)

  # Loop.
  metrics, losses = {}, []
  tick = time.time()
  for step in range(start, config.steps):
    batch = sharding.global_batch(rows_of(step, rows), mesh, rules, config.batch_size)
    state, metrics = train_step(state, batch, key)
    metrics = {k: float(v) for k, v in metrics.items()}
    losses.append(metrics["loss"])
    if (step + 1) % config.log_every == 0 or step + 1 == config.steps:
      rate = (step + 1 - start) / (time.time() - tick)
      log(json.dumps({"step": step + 1, **metrics, "steps_per_s": round(rate, 3)}))
      if jax.process_index() == 0:
        with open(os.path.join(workdir, "metrics.jsonl"), "a") as f:
          f.write(json.dumps({"step": step + 1, **metrics}) + "\n")
    manager.save(step + 1, args=ocp.args.StandardSave(state),
                 force=step + 1 == config.steps)
  manager.wait_until_finished()

  # Checkpoint check: the last checkpoint restores onto the mesh equal to the live state.
  restored_equal = None
  if config.verify_restore and manager.latest_step() is not None:
    restored = manager.restore(manager.latest_step(), args=ocp.args.StandardRestore(abstract))
    same = jax.jit(lambda a, b: jnp.all(jnp.stack(
        [jnp.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))])))
    restored_equal = bool(same(restored, state))
  manager.close()
  return {"step": int(state.step), "losses": losses, "restored_equal": restored_equal,
          "process": jax.process_index(), "mesh": dict(mesh.shape)}


def main(argv, flag):
  del argv
  import jax

  logging.set_verbosity(logging.WARNING)  # Orbax logs every save and restore at INFO.
  config = flag["config"].value
  if flag["coordinator"].value:
    jax.distributed.initialize(flag["coordinator"].value, flag["num_processes"].value,
                               flag["process_id"].value)
  elif config.auto_distributed:
    jax.distributed.initialize()  # TPU pods, SLURM, Open MPI: peers from the environment.
  os.makedirs(flag["workdir"].value, exist_ok=True)
  result = train(config, flag["workdir"].value)
  print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
  _flags = _define_flags()
  flags.mark_flags_as_required(["config", "workdir"])
  app.run(lambda argv: main(argv, _flags))
