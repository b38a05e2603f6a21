"""Fields shared by the Moving Digits experiment configs."""

import os

import ml_collections


def base_config(task: str, runlocal: bool) -> ml_collections.ConfigDict:
  """Run, data and optimizer fields; `runlocal` shrinks the run to a quick smoke test."""
  c = ml_collections.ConfigDict()
  c.task = task
  c.seed = 0
  c.dtype = "float32"  # compute dtype: float32 | bfloat16 (params stay float32)
  c.batch_size = 8
  c.num_steps = 20 if runlocal else 1000
  c.log_every = 5 if runlocal else 25
  c.checkpoint_every = 10 if runlocal else 100
  c.keep_checkpoints = 2
  c.num_samples = 4 if runlocal else 8  # test videos in samples.png
  c.ema_decay = 0.999
  c.ema_warmup = True
  c.mesh = ml_collections.ConfigDict({"data": -1, "fsdp": 1})
  # The weights this run starts from, when it has no checkpoint of its own: a run's workdir (its
  # latest params and EMA params: stage-wise training) or a text-to-video bundle, a directory or
  # a shipped name (fine-tuning); the step and optimizer state start afresh. "": from scratch.
  c.init_from = ""
  c.init_fresh = ()  # params that keep their initialisation under init_from (a changed shape)

  c.data = ml_collections.ConfigDict()
  c.data.data_dir = os.environ.get("JAXGEN_DATA_DIR", os.path.expanduser("~/jaxgen/data"))
  c.data.train_size = 256 if runlocal else 20_000
  c.data.test_size = 64 if runlocal else 1_000
  c.data.seed = 0

  c.optim = ml_collections.ConfigDict()
  c.optim.lr = 1e-3
  c.optim.warmup_steps = 5 if runlocal else 100
  c.optim.num_steps = c.get_ref("num_steps")  # the cosine decays over the whole run
  c.optim.end_lr_factor = 0.1
  c.optim.weight_decay = 0.01
  c.optim.b1 = 0.9
  c.optim.b2 = 0.99
  c.optim.eps = 1e-8
  c.optim.clip_norm = 1.0
  # Top-level params left as they are (no gradient, update or weight decay), e.g.
  # ("encoder", "quant_conv") to fine-tune a VAE's decoder for the latents a DiT already learnt.
  c.optim.frozen = ()
  return c
