"""The generic training loop: mesh, input, state, update step, checkpoints, metrics, samples.

A task (jaxgen/train/tasks) supplies `init(key, batch)`, `loss(params, batch, key)`,
`samples(params, batch, key)`, `batch_keys`, `tokenizer` and `data_source(split)`, and may
supply `curriculum()`: (subset, steps, rows) of the loader, or None. The batch at
step k is the loader's k-th (a pure function of the seed and k) and the step's key is
`fold_in(key, k)`, so a run resumed from a checkpoint continues the same loss curve.
"""

import json
import os
import signal
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxgen import files
from jaxgen.data import loader as loader_lib
from jaxgen.train import checkpoint as ckpt_lib
from jaxgen.train import ema as ema_lib
from jaxgen.train import optim
from jaxgen.train import plots
from jaxgen.train import state as state_lib

METRICS_FILE = "metrics.jsonl"


def make_train_step(task: Any, tx, config: ml_collections.ConfigDict, key: jax.Array):
  """(state, batch) -> (state, metrics): one AdamW update, EMA, and the step's scalars."""
  schedule = optim.learning_rate(config.optim)
  frozen = optim.frozen(config.optim)

  def loss_fn(params, batch, step_key):
    # No gradient into frozen params: XLA then drops their backward pass altogether.
    params = {k: jax.lax.stop_gradient(v) if k in frozen else v for k, v in params.items()}
    return task.loss(params, batch, step_key)

  def train_step(state: state_lib.TrainState, batch: dict[str, jax.Array]):
    step_key = jax.random.fold_in(key, state.step)
    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params, batch, step_key)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = jax.tree.map(lambda p, u: p + u, state.params, updates)
    decay = ema_lib.ema_decay(state.step, config.ema_decay, config.ema_warmup)
    ema_params = ema_lib.ema_update(state.ema_params, params, decay)
    ema_params = {k: state.ema_params[k] if k in frozen else v for k, v in ema_params.items()}
    metrics = {"loss": loss, "grad_norm": _global_norm(grads), "lr": schedule(state.step), **aux}
    new = state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                        ema_params=ema_params)
    return new, metrics

  return train_step


def _global_norm(tree) -> jax.Array:
  return jnp.sqrt(sum(jnp.sum(jnp.square(x.astype(jnp.float32))) for x in jax.tree.leaves(tree)))


def read_metrics(workdir: str) -> list[dict]:
  """The rows of `workdir/metrics.jsonl` (empty if none)."""
  path = os.path.join(workdir, METRICS_FILE)
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def _truncate_metrics(workdir: str, step: int) -> None:
  """Drops metrics rows past `step`: they belong to steps a resumed run will redo."""
  rows = [r for r in read_metrics(workdir) if r["step"] <= step]
  files.write_text(os.path.join(workdir, METRICS_FILE), "".join(json.dumps(r) + "\n" for r in rows))


class _StopFlag:
  """Set by SIGTERM/SIGINT so the loop can write a checkpoint before exiting."""

  def __init__(self):
    self.stop = False
    self._previous = {}

  def __enter__(self):
    for sig in (signal.SIGTERM, signal.SIGINT):
      try:
        self._previous[sig] = signal.signal(sig, self._handle)
      except ValueError:  # not the main thread: no handlers
        pass
    return self

  def _handle(self, signum, frame):
    del signum, frame
    self.stop = True

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)


def train(config: ml_collections.ConfigDict, workdir: str, task: Any | None = None,
          progress: bool = True, stop_at: int | None = None) -> dict[str, Any]:
  """Trains `config.task` for config.num_steps steps in `workdir`, resuming from its latest
  checkpoint; `stop_at` ends this invocation early at that step (checkpointed, resumable).
  Returns {'state', 'metrics' (this run's rows), 'resumed_from'}."""
  from jaxgen.train import tasks  # the task registry imports the models
  os.makedirs(workdir, exist_ok=True)
  task = tasks.make(config) if task is None else task

  # Mesh and input.
  mesh = state_lib.make_mesh(config.mesh.data, config.mesh.fsdp)
  data_sharding = state_lib.batch_sharding(mesh)
  train_source = task.data_source("train")
  loader = loader_lib.Loader(
      train_source, global_batch_size=config.batch_size, sharding=data_sharding,
      seed=config.seed, tokenizer=task.tokenizer, keys=task.batch_keys,
      curriculum=task.curriculum() if hasattr(task, "curriculum") else None)

  # Model, optimizer and state (params initialised from the first batch's shapes).
  key = jax.random.key(config.seed)
  init_key, train_key, sample_key = jax.random.split(key, 3)
  example = loader.batch(0)
  tx = optim.optimizer(config.optim)
  state, shardings = state_lib.create(lambda k: task.init(k, example), tx, init_key, mesh)
  checkpointer = ckpt_lib.Checkpointer(workdir, every=config.checkpoint_every,
                                       keep=config.keep_checkpoints)
  start = checkpointer.latest_step() or 0
  if start:
    state = checkpointer.restore(state, start)
  elif config.get("init_from"):
    state = _init_from(config.init_from, state, shardings, optim.frozen(config.optim),
                       frozenset(config.get("init_fresh", ())))
  _truncate_metrics(workdir, start)
  num_params = state_lib.num_params(state.params)

  # Update step, compiled once for the mesh.
  batch_shardings = jax.tree.map(lambda _: loader.sharding, example)
  step_fn = jax.jit(make_train_step(task, tx, config, train_key),
                    in_shardings=(shardings, batch_shardings),
                    out_shardings=(shardings, None), donate_argnums=(0,))

  end = config.num_steps if stop_at is None else max(start, min(stop_at, config.num_steps))
  rows, window = [], []
  bar = _progress(progress, start, config.num_steps, num_params, workdir)
  last_time, last_step = time.perf_counter(), start
  # Activations are not constrained by logical names here (no nn.logical_axis_rules): the
  # shardings of params and batches determine the program; CLIPTextModel's DenseGeneral kernels
  # fail flax's shape check under rules (3 axis names on the flattened 2-D init).
  with jax.set_mesh(mesh), _StopFlag() as flag:
    for step, batch in loader(start, end - start):
      state, metrics = step_fn(state, batch)
      # Async dispatch would let this loop run up to log_every steps ahead of the device, each
      # holding its batch there, and a stop request would wait for all of them: keep one step in
      # flight, so SIGTERM (a preemption's short notice) is served within a step or two.
      if window:
        jax.block_until_ready(window[-1])
      window.append(metrics)
      done = step + 1
      if done % config.log_every == 0 or done == end:
        window = jax.device_get(window)
        now = time.perf_counter()
        row = {k: float(np.mean([m[k] for m in window])) for k in window[0]}
        steps_per_s = (done - last_step) / max(now - last_time, 1e-9)
        row.update(step=done, steps_per_s=steps_per_s,
                   examples_per_s=steps_per_s * config.batch_size)
        rows.append(row)
        with open(os.path.join(workdir, METRICS_FILE), "a") as f:
          f.write(json.dumps(row) + "\n")
        bar.set_postfix(loss=f"{row['loss']:.4g}", steps_s=f"{steps_per_s:.3g}",
                        ex_s=f"{row['examples_per_s']:.3g}")
        bar.update(done - last_step)
        window, last_time, last_step = [], now, done
      checkpointer.save(done, state)
      if flag.stop:
        break
  bar.close()
  final = int(jax.device_get(state.step))
  if final > start and final not in checkpointer.manager.all_steps():
    checkpointer.save(final, state, force=True)
  checkpointer.close()

  if final == config.num_steps:
    _write_artifacts(task, config, workdir, state, sample_key)
  return {"state": state, "metrics": rows, "resumed_from": start}


def _init_from(source: str, state: state_lib.TrainState, shardings,
               frozen: frozenset[str] = frozenset(),
               fresh: frozenset[str] = frozenset()) -> state_lib.TrainState:
  """`state` with the weights of `source`, the step and optimizer state afresh: stage-wise
  training (images first, then videos, as Open-Sora and Wan train) from a `jaxgen train` workdir
  (its latest checkpoint's params and EMA params), or fine-tuning a text-to-video or cascade stage
  bundle (a directory, or a shipped model such as `moving-digits` or `moving-digits-tsr`; its
  weights as both). `frozen` params take the source's EMA weights, the ones it ships: e.g. a VAE
  encoder whose latents a DiT learnt, kept while the decoder is fine-tuned. `fresh` params
  (config.init_fresh) keep their initialisation instead: e.g. a noise-level expert given a new
  patch size for the next stage."""
  # Imported here: the zoo's loaders import the model families, bundles the pipelines.
  from jaxgen.pipelines import bundle, cascade, load
  from jaxgen.zoo.checkpoint import check_params
  path = os.path.expanduser(cascade.stage_dir(source) or load.bundle_dir(source))
  if os.path.isfile(os.path.join(path, cascade.META_FILE)):
    _, weights = cascade.load_stage(path)
    params = ema_params = weights
  elif os.path.isfile(os.path.join(path, bundle.META_FILE)):
    _, weights, _ = bundle.load_bundle(path)
    params = ema_params = {k: v for k, v in weights.items() if k in state.params}  # not the VAE
  else:
    try:
      restored = ckpt_lib.restore_state(path, argument="init_from")
    except ValueError as e:
      shipped = load.shipped_models() + load.shipped_models(cascade.META_FILE)
      raise ValueError(f"{e}, a text-to-video bundle directory (model.json, params.safetensors, "
                       f"tokenizer/), a stage bundle directory (stage.json, ...) or a shipped "
                       f"model ({', '.join(shipped)})") from None
    params, ema_params = restored["params"], restored["ema_params"]
    params = {k: ema_params[k] if k in frozen else v for k, v in params.items()}
  unknown = sorted(fresh - set(state.params))
  if unknown:
    raise ValueError(f"init_fresh: {unknown} are not params of this task; expected names among "
                     f"{sorted(state.params)}")
  params, ema_params = ({k: v for k, v in tree.items() if k not in fresh}
                        for tree in (params, ema_params))
  check_params(params, {k: v for k, v in state.params.items() if k not in fresh},
               f"init_from={source!r}")
  params = {**params, **{k: state.params[k] for k in fresh}}
  ema_params = {**ema_params, **{k: state.ema_params[k] for k in fresh}}
  return state.replace(params=jax.device_put(params, shardings.params),
                       ema_params=jax.device_put(ema_params, shardings.ema_params))


def _progress(enabled: bool, start: int, total: int, num_params: int, workdir: str):
  from tqdm import tqdm
  return tqdm(total=total, initial=start, disable=not enabled, dynamic_ncols=True,
              desc=f"train {num_params / 1e6:.2f}M params -> {os.path.basename(workdir)}")


def _write_artifacts(task: Any, config: ml_collections.ConfigDict, workdir: str, state,
                     key: jax.Array) -> None:
  """loss.png (the whole run's curve) and samples.png (EMA weights on test examples)."""
  rows = read_metrics(workdir)
  if rows:
    plots.write_curve(os.path.join(workdir, "loss.png"), [r["step"] for r in rows],
                      [r["loss"] for r in rows], title=f"{config.task} training loss")
  if config.num_samples <= 0:
    return
  source = task.data_source("test")
  sample_loader = loader_lib.Loader(
      source, global_batch_size=config.num_samples, sharding=state_lib.batch_sharding(
          state_lib.make_mesh(1, 1)), seed=config.seed, tokenizer=task.tokenizer,
      keys=task.batch_keys)
  batch = sample_loader.batch(0)
  ema_params = jax.device_get(state.ema_params)  # host copy: sampled on one device
  videos = np.asarray(jax.device_get(jax.jit(task.samples)(ema_params, batch, key)))
  plots.write_video_grid(os.path.join(workdir, "samples.png"), videos)
