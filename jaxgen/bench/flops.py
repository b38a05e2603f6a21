"""Analytic FLOP counts of the benchmarked programs: matmuls and attention, 2 FLOPs per MAC.

Elementwise work (norms, activations, softmax, RoPE) is not counted, as is usual for MFU.
`torch_counted` counts the reference's FLOPs instead (used where a hand count would be long: the
VAE), and the tests check the hand counts against it.
"""

from collections.abc import Callable
import math
from typing import Any


def matmul(m: int, k: int, n: int) -> int:
  """[m, k]·[k, n]."""
  return 2 * m * k * n


def attention(batch: int, heads: int, q_len: int, kv_len: int, head_dim: int) -> int:
  """q·kᵀ and probs·v over all heads."""
  return 2 * matmul(batch * heads * q_len, head_dim, kv_len)


def dit_forward(config: Any, batch: int, height: int, width: int) -> int:
  """One DiT forward (jaxgen.models.dit.DiTConfig) on latents [batch, height, width, C]."""
  p, d, c = config.patch_size, config.hidden_size, config.in_channels
  length = (height // p) * (width // p)
  tokens = batch * length
  mlp = int(d * config.mlp_ratio)
  block = (matmul(tokens, d, 3 * d) + attention(batch, config.num_heads, length, length,
                                                config.head_dim)
           + matmul(tokens, d, d) + matmul(tokens, d, mlp) + matmul(tokens, mlp, d)
           + matmul(batch, d, 6 * d)  # adaLN-Zero
           # Each block's own timestep MLP (diffusers keeps one embedder per block).
           + matmul(batch, 256, d) + matmul(batch, d, d))
  return (matmul(tokens, p * p * c, d) + config.num_layers * block + matmul(batch, d, 2 * d)
          + matmul(tokens, d, p * p * config.out_channels))


def wan_forward(config: Any, batch: int, frames: int, height: int, width: int,
                text_len: int) -> int:
  """One Wan forward (jaxgen.models.wan.WanConfig) on latents [batch, frames, height, width, C]
  with text_len context tokens."""
  grid = [s // p for s, p in zip((frames, height, width), config.patch_size)]
  length = math.prod(grid)
  tokens, context = batch * length, batch * text_len
  d, n, h, f = config.hidden_size, config.num_heads, config.head_dim, config.ffn_dim
  patch = math.prod(config.patch_size)
  block = (matmul(tokens, d, 3 * d) + attention(batch, n, length, length, h)
           + matmul(tokens, d, d)
           + matmul(tokens, d, d) + matmul(context, d, 2 * d)  # cross-attention q, kv
           + attention(batch, n, length, text_len, h) + matmul(tokens, d, d)
           + matmul(tokens, d, f) + matmul(tokens, f, d))
  embed = (matmul(tokens, patch * config.in_channels, d)
           + matmul(batch, config.freq_dim, d) + matmul(batch, d, d) + matmul(batch, d, 6 * d)
           + matmul(context, config.text_dim, d) + matmul(context, d, d))
  return embed + config.num_layers * block + matmul(tokens, d, patch * config.out_channels)


def torch_counted(call: Callable[[], Any]) -> int:
  """FLOPs torch's FlopCounterMode counts in call(), attention through the math kernel.

  The counter has no formula for the CPU flash-attention kernel, so attention is routed through
  the math backend (two counted bmm's) for this count.
  """
  import torch
  from torch.nn.attention import sdpa_kernel, SDPBackend
  from torch.utils.flop_counter import FlopCounterMode

  with FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH), \
       torch.inference_mode():
    call()
  return int(counter.get_total_flops())
