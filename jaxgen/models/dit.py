"""DiT (Peebles & Xie 2023): class-conditional latent diffusion transformer with adaLN-Zero.

Port of diffusers' DiTTransformer2DModel: patch embedding + fixed 2D sin-cos positions, blocks of
self-attention and MLP modulated by adaLN-Zero from timestep + class-label embeddings, learned σ
(out_channels = 2·C: ε and the variance interpolation). The label table has a null class (index
num_classes) for classifier-free guidance.
"""

from collections.abc import Callable
import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.models.dit_block import DiTBlock
from jaxgen.models.dit_common import check_divisible, check_shape, finish_config, stack_layers
from jaxgen.models.dit_common import TensorReader
from jaxgen.nn.axes import TOKENS, constrain
from jaxgen.nn.embeddings import LabelEmbedder, TimestepEmbedder
from jaxgen.nn.linear import Linear
from jaxgen.nn.modulation import AdaLNZero, chunks, modulate
from jaxgen.nn.norms import layer_norm
from jaxgen.nn.patch import PatchEmbed, unpatchify
from jaxgen.nn.positions import sincos_2d
from jaxgen.nn.scan import scan_layers


@dataclasses.dataclass(frozen=True)
class DiTConfig:
  """DiT hyper-parameters; defaults are DiT-XL/2 at 256² (32² latents)."""

  sample_size: int = 32  # Latent height = width the positions are laid out for.
  patch_size: int = 2
  in_channels: int = 4
  out_channels: int = 8  # 2·in_channels: learned σ.
  num_layers: int = 28
  num_heads: int = 16
  head_dim: int = 72
  mlp_ratio: float = 4.0
  num_classes: int = 1000  # The label table has one more row, the null class.
  norm_eps: float = 1e-5  # LayerNorm eps before the MLP (the one before attention is 1e-6).
  attention_bias: bool = True
  dtype: Any = jnp.float32  # Compute dtype; params are float32.
  remat_policy: str = "none"  # One of jaxgen.nn.scan.REMAT_POLICIES.
  attention_impl: str | None = None  # One of jaxgen.nn.attention.IMPLEMENTATIONS.

  def __post_init__(self):
    finish_config(self)

  @property
  def hidden_size(self) -> int:
    return self.num_heads * self.head_dim

  @property
  def null_class(self) -> int:
    """The label of the unconditional branch of classifier-free guidance."""
    return self.num_classes

  @classmethod
  def from_diffusers(cls, cfg: dict) -> "DiTConfig":
    """From a diffusers DiTTransformer2DModel (or legacy Transformer2DModel) config.json dict."""
    if cfg.get("norm_type", "ada_norm_zero") != "ada_norm_zero":
      raise ValueError(f"DiT needs norm_type='ada_norm_zero', got {cfg['norm_type']!r}")
    if cfg.get("norm_elementwise_affine", False):
      raise ValueError("DiT with norm_elementwise_affine=True is not supported")
    if cfg.get("activation_fn", "gelu-approximate") != "gelu-approximate":
      raise ValueError(
          f"DiT supports activation_fn='gelu-approximate', got {cfg['activation_fn']!r}")
    in_channels = cfg.get("in_channels", 4)
    return cls(
        sample_size=cfg.get("sample_size", 32), patch_size=cfg.get("patch_size", 2),
        in_channels=in_channels, out_channels=cfg.get("out_channels") or in_channels,
        num_layers=cfg.get("num_layers", 28), num_heads=cfg.get("num_attention_heads", 16),
        head_dim=cfg.get("attention_head_dim", 72),
        num_classes=cfg.get("num_embeds_ada_norm", 1000),
        norm_eps=cfg.get("norm_eps", 1e-5), attention_bias=cfg.get("attention_bias", True))


PRESETS: dict[str, DiTConfig] = {
    "dit-xl-2-256": DiTConfig(),
    "dit-b-2-256": DiTConfig(num_layers=12, num_heads=12, head_dim=64),
    "dit-s-2-256": DiTConfig(num_layers=12, num_heads=6, head_dim=64),
}


class _ConditionEmbedder(nn.Module):
  """Timestep + class-label embedding: t: [B], y: [B] -> c: [B, D] f32."""

  features: int
  num_classes: int

  @nn.compact
  def __call__(self, t: jax.Array, y: jax.Array) -> jax.Array:
    temb = TimestepEmbedder(self.features, 256, True, 1.0, name="timestep")(t)
    return temb + LabelEmbedder(self.num_classes, self.features, name="label")(y)


class DiT(nn.Module):
  """(x: [B, H, W, C], t: [B] float timesteps, y: [B] int labels) -> [B, H, W, out_channels]."""

  config: DiTConfig

  @nn.compact
  def __call__(self, x: jax.Array, t: jax.Array, y: jax.Array) -> jax.Array:
    cfg = self.config
    check_shape("x", x, (None, None, None, cfg.in_channels), "[B, H, W, in_channels]")
    b, height, width, _ = x.shape
    p = cfg.patch_size
    check_divisible("x", (height, width), (p, p), "height, width")
    check_shape("t", t, (b,), "[B] timesteps")
    check_shape("y", y, (b,), "[B] class labels")
    if not jnp.issubdtype(y.dtype, jnp.integer):
      raise ValueError(
          f"y has dtype {y.dtype}; expected integer class labels in [0, {cfg.num_classes}]")
    d, grid = cfg.hidden_size, (height // p, width // p)

    pos = sincos_2d(d, *grid, base_size=cfg.sample_size // p)
    x = PatchEmbed((p, p), d, cfg.dtype, name="patch_embed")(x) + pos.astype(cfg.dtype)
    x = constrain(x, TOKENS)

    # diffusers' DiT keeps one timestep/label embedder per block (copies of the paper's single one);
    # we keep them too, to load its checkpoints and match its parameter count.
    embedders = nn.vmap(_ConditionEmbedder, variable_axes={"params": 0},
                        split_rngs={"params": True}, in_axes=(None, None),
                        axis_size=cfg.num_layers, metadata_params={nn.PARTITION_NAME: "layers"})
    c = embedders(d, cfg.num_classes, name="cond_embed")(t, y)  # [layers, B, D]

    blocks = scan_layers(DiTBlock, cfg.num_layers, in_axes=(0,), remat_policy=cfg.remat_policy)
    x, _ = blocks(cfg.num_heads, cfg.head_dim, int(d * cfg.mlp_ratio), modulation="adaln_zero",
                  eps_attn=1e-6, eps_mlp=cfg.norm_eps, attention_bias=cfg.attention_bias,
                  dtype=cfg.dtype, attention_impl=cfg.attention_impl, name="blocks")(x, c)

    # The final layer is modulated by block 0's conditioning, as in diffusers.
    shift, scale = chunks(AdaLNZero(2, d, name="final_adaln")(c[0]))
    x = modulate(layer_norm(x, 1e-6), shift, scale).astype(cfg.dtype)
    x = Linear(p * p * cfg.out_channels, ("embed", None), dtype=cfg.dtype,
               kernel_init=nn.initializers.zeros_init(), name="proj_out")(x)
    return unpatchify(x, grid, (p, p))


def convert_params(config: DiTConfig, read: Callable[[str], np.ndarray]) -> dict:
  """diffusers DiTTransformer2DModel state dict (read by name, float32) -> DiT params."""
  r = TensorReader(read, "DiT")
  d, p, k = config.hidden_size, config.patch_size, config.num_classes
  mlp = int(d * config.mlp_ratio)

  def embedder(i):
    pre = f"transformer_blocks.{i}.norm1.emb"
    return {
        "timestep": {"linear_1": r.linear(f"{pre}.timestep_embedder.linear_1", 256, d),
                     "linear_2": r.linear(f"{pre}.timestep_embedder.linear_2", d, d)},
        "label": {"table": r(f"{pre}.class_embedder.embedding_table.weight", (k + 1, d))},
    }

  def block(i):
    pre = f"transformer_blocks.{i}"
    return {
        "adaln": {"linear": r.linear(f"{pre}.norm1.linear", d, 6 * d)},
        "self_attn": r.attention(f"{pre}.attn1", d, config.num_heads, config.head_dim,
                                 bias=config.attention_bias),
        "mlp": {"up": r.linear(f"{pre}.ff.net.0.proj", d, mlp),
                "down": r.linear(f"{pre}.ff.net.2", mlp, d)},
    }

  return {
      "patch_embed": r.patch_embed("pos_embed.proj", config.in_channels, d, (p, p)),
      "cond_embed": stack_layers(config.num_layers, embedder),
      "blocks": stack_layers(config.num_layers, block),
      "final_adaln": {"linear": r.linear("proj_out_1", d, 2 * d)},
      "proj_out": r.linear("proj_out_2", d, p * p * config.out_channels),
  }
