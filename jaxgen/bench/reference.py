"""The two sides of a case on the same weights: a diffusers module with random weights, saved with
`save_pretrained` and loaded back through jaxgen's loader."""

import dataclasses
import tempfile
from typing import Any

import jax
import numpy as np


def randomize(module: Any, seed: int = 0) -> Any:
  """Gives every parameter a random value, the zero-initialised ones (adaLN-Zero, output
  projections, biases) too, so outputs depend on every weight and the parity check means
  something; norm gains stay near 1. Returns the module in eval mode."""
  import torch

  g = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for name, p in module.named_parameters():
      # Norm gains: LayerNorm / RMSNorm weights, and Wan VAE's RMS_norm `gamma` [C, 1, 1(, 1)].
      if name.endswith("gamma") or (p.ndim == 1 and name.endswith("weight") and "norm" in name):
        p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
      elif p.ndim >= 2 and "scale_shift_table" not in name:
        fan_in = int(np.prod(p.shape[1:]))
        p.copy_(torch.randn(p.shape, generator=g) / np.sqrt(fan_in))
      else:
        p.copy_(0.1 * torch.randn(p.shape, generator=g))
  return module.eval()


def dit_reference(config: Any) -> Any:
  """diffusers DiTTransformer2DModel for a jaxgen DiTConfig."""
  from diffusers import DiTTransformer2DModel

  return DiTTransformer2DModel(
      num_attention_heads=config.num_heads, attention_head_dim=config.head_dim,
      in_channels=config.in_channels, out_channels=config.out_channels,
      num_layers=config.num_layers, sample_size=config.sample_size, patch_size=config.patch_size,
      num_embeds_ada_norm=config.num_classes, norm_eps=config.norm_eps,
      attention_bias=config.attention_bias)


def wan_reference(config: Any) -> Any:
  """diffusers WanTransformer3DModel for a jaxgen WanConfig."""
  from diffusers import WanTransformer3DModel

  return WanTransformer3DModel(
      patch_size=tuple(config.patch_size), num_attention_heads=config.num_heads,
      attention_head_dim=config.head_dim, in_channels=config.in_channels,
      out_channels=config.out_channels, text_dim=config.text_dim, freq_dim=config.freq_dim,
      ffn_dim=config.ffn_dim, num_layers=config.num_layers, cross_attn_norm=config.cross_attn_norm,
      eps=config.eps, rope_max_seq_len=config.rope_max_seq_len)


def vae_wan_reference(config: Any) -> Any:
  """diffusers AutoencoderKLWan for a jaxgen AutoencoderKLWanConfig."""
  from diffusers import AutoencoderKLWan

  return AutoencoderKLWan(
      base_dim=config.base_dim, decoder_base_dim=config.decoder_base_dim, z_dim=config.z_dim,
      dim_mult=list(config.dim_mult), num_res_blocks=config.num_res_blocks,
      attn_scales=list(config.attn_scales), temperal_downsample=list(config.temporal_downsample),
      latents_mean=list(config.latents_mean), latents_std=list(config.latents_std),
      in_channels=config.in_channels, out_channels=config.out_channels)


@dataclasses.dataclass
class Pair:
  """The reference module and jaxgen's model + params loaded from its saved directory."""
  reference: Any  # torch.nn.Module in eval mode, on its device and dtype.
  config: Any  # jaxgen config as the loader made it (compute dtype set).
  model: Any  # flax.linen.Module
  params: Any  # on the default device


def load_pair(reference: Any, *, dtype: str = "float32", device: str = "cpu",
              params_dtype: str | None = None, overrides: dict | None = None,
              seed: int = 0) -> Pair:
  """Randomizes `reference`, saves it, loads it with jaxgen.zoo.load(dtype=dtype): same weights.

  With params_dtype (e.g. "bfloat16", for inference) the reference is reloaded the way its users
  load it, `from_pretrained(torch_dtype=...)` (which keeps its float32 modules in float32), and
  jaxgen's matmul kernels are cast likewise (norms, tables and biases stay float32). overrides
  replace config fields that are not architecture (attention_impl).
  """
  import torch

  from jaxgen import zoo
  from jaxgen.zoo import families

  randomize(reference, seed)
  reference.eval()
  torch_dtype = getattr(torch, params_dtype or "float32")
  with tempfile.TemporaryDirectory(prefix="jaxgen-bench-") as directory:
    reference.save_pretrained(directory)
    config, params = zoo.load(directory, dtype=dtype)
    if torch_dtype != torch.float32:
      reference = type(reference).from_pretrained(directory, torch_dtype=torch_dtype).eval()
  if overrides:
    config = dataclasses.replace(config, **overrides)
  model = families.family_of_config(config).model(config)
  if params_dtype is not None:
    params = jax.tree_util.tree_map_with_path(
        lambda path, x: x.astype(params_dtype) if path[-1].key == "kernel" else x, params)
  params = jax.device_put(params)
  if device != "cpu":
    reference = reference.to(device)
  return Pair(reference, config, model, params)


def rel_err(got: Any, want: Any) -> float:
  """‖got − want‖ / ‖want‖ in float64."""
  got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
  return float(np.linalg.norm(got - want) / np.linalg.norm(want))


def to_numpy(x: Any) -> np.ndarray:
  """A torch tensor (any device/dtype) or JAX array as float32 numpy."""
  if hasattr(x, "detach"):
    return x.detach().float().cpu().numpy()
  return np.asarray(x, np.float32)
