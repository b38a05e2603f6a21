"""Wan 2.1 14B on 2 hosts × 8 H100 (80 GB) over InfiniBand/Ethernet, 480p × 81 frames.

  # Under SLURM, one task per host (JAX reads the peers from SLURM's environment):
  srun --nodes=2 --ntasks-per-node=1 --gpus-per-node=8 python experiments/pod/train.py \
    --config=experiments/pod/configs/gpu_h100_2x8.py --workdir=/shared/wan14b
  # Without SLURM, on each host (RANK = 0 or 1):
  python experiments/pod/train.py --config=experiments/pod/configs/gpu_h100_2x8.py \
    --workdir=/shared/wan14b --coordinator=$HOST0:12345 --num_processes=2 --process_id=$RANK

Inside a host (NVLink) each video's 32,760 tokens are split over 2 GPUs (context=2, ring
attention: no [L, L] logits) and params over 4 (fsdp=4); the two hosts are data-parallel replicas
(dcn_data=2), so only the gradient all-reduce crosses the slower network. Per GPU: 16 B × 14.3 B
/ 8 = 28.6 GB of params + grads + Adam and half a video's saved layer inputs (6.7 GB with full
remat); `jaxgen memory --mesh fsdp=4,context=2` puts the peak at 64-66 GB of 80. With cuDNN
flash attention, attention_impl="ulysses" (40 heads / context 2) trades the ring for two
all-to-alls.
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  del arg
  c = ml_collections.ConfigDict()
  c.model = "wan2.1-t2v-14b"
  c.model_overrides = dict(dtype="bfloat16", remat_policy="full", attention_impl="ring")
  c.mesh = "fsdp=4,context=2,dcn_data=2"
  c.rules = {}
  c.auto_distributed = True
  c.latent_shape = (21, 60, 104, 16)
  c.text_len = 512
  c.batch_size = 8  # One video per pair of GPUs.
  c.data_dir = "/shared/wan_latents"
  c.steps = 20000
  c.lr = 1e-5
  c.warmup_steps = 500
  c.weight_decay = 0.0
  c.grad_clip = 1.0
  c.flow_shift = 5.0
  c.seed = 0
  c.log_every = 10
  c.checkpoint_every = 500
  c.keep_checkpoints = 3
  c.verify_restore = False
  return c
