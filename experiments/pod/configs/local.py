"""A tiny Wan on the local devices: the multi-process test and a laptop smoke run.

  python experiments/pod/train.py --config=experiments/pod/configs/local.py --workdir=/tmp/pod
  # Two processes on this host, two CPU devices each (what tests/test_multiprocess.py runs):
  for i in 0 1; do XLA_FLAGS=--xla_force_host_platform_device_count=2 JAX_PLATFORMS=cpu \
    python experiments/pod/train.py --config=experiments/pod/configs/local.py --workdir=/tmp/pod \
    --coordinator=localhost:12355 --num_processes=2 --process_id=$i & done; wait
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  del arg
  c = ml_collections.ConfigDict()
  c.model = "wan2.1-t2v-1.3b"
  c.model_overrides = dict(num_layers=2, num_heads=4, head_dim=8, ffn_dim=64, text_dim=16,
                           freq_dim=16, in_channels=4, out_channels=4)
  # One data shard per process (across the slow link), FSDP within each process.
  c.mesh = "dcn_data=-1,fsdp=-1"
  c.rules = {}
  c.auto_distributed = False
  c.latent_shape = (2, 4, 4, 4)  # (t, h, w, C) latents.
  c.text_len = 4
  c.batch_size = 4
  c.data_dir = ""  # Empty: synthetic latents.
  c.steps = 3
  c.lr = 1e-3
  c.warmup_steps = 1
  c.weight_decay = 0.0
  c.grad_clip = 1.0
  c.flow_shift = 3.0
  c.seed = 0
  c.log_every = 1
  c.checkpoint_every = 3
  c.keep_checkpoints = 2
  c.verify_restore = True
  return c
