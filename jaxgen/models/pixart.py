"""PixArt-α (Chen et al. 2023): text-to-image DiT, adaLN-single and cross-attention to T5 tokens.

Port of diffusers' PixArtTransformer2DModel. One shared SiLU-Linear of the timestep embedding gives
six modulation vectors, each block adds its own learned table (§2.3); T5 tokens go through a
caption projection and are attended to with their padding mask. The 1024² model adds the
resolution and aspect-ratio micro-conditions to the timestep embedding (use_additional_conditions).
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
from jaxgen.nn.axes import CONTEXT, TOKENS, constrain
from jaxgen.nn.embeddings import CaptionProjection, TimestepEmbedder
from jaxgen.nn.linear import Linear
from jaxgen.nn.modulation import AdaLNSingle, chunks, modulate, ScaleShiftTable
from jaxgen.nn.norms import layer_norm
from jaxgen.nn.patch import PatchEmbed, unpatchify
from jaxgen.nn.positions import sincos_2d
from jaxgen.nn.scan import scan_layers


@dataclasses.dataclass(frozen=True)
class PixArtConfig:
  """PixArt-α hyper-parameters; defaults are PixArt-XL/2 at 512² (64² latents)."""

  sample_size: int = 64  # Latent height = width of the training resolution.
  patch_size: int = 2
  in_channels: int = 4
  out_channels: int = 8  # 2·in_channels: learned σ.
  num_layers: int = 28
  num_heads: int = 16
  head_dim: int = 72
  mlp_ratio: float = 4.0
  caption_channels: int | None = 4096  # T5 width; None: context is already hidden_size wide.
  norm_eps: float = 1e-6
  interpolation_scale: float = 1.0  # Position grid scale: 0.5 at 256², 1 at 512², 2 at 1024².
  use_additional_conditions: bool = False  # Resolution/aspect-ratio micro-conditions (1024²).
  attention_bias: bool = True
  dtype: Any = jnp.float32  # Compute dtype; params are float32.
  remat_policy: str = "none"  # One of jaxgen.nn.scan.REMAT_POLICIES.
  attention_impl: str | None = None  # One of jaxgen.nn.attention.IMPLEMENTATIONS.

  def __post_init__(self):
    finish_config(self)
    if self.use_additional_conditions and self.hidden_size % 3:
      raise ValueError(f"use_additional_conditions needs hidden_size divisible by 3, got "
                       f"{self.hidden_size}")

  @property
  def hidden_size(self) -> int:
    return self.num_heads * self.head_dim

  @property
  def context_dim(self) -> int:
    """Width of the text tokens given to the model."""
    return self.caption_channels or self.hidden_size

  @classmethod
  def from_diffusers(cls, cfg: dict) -> "PixArtConfig":
    """From a diffusers PixArtTransformer2DModel config.json dict."""
    if cfg.get("norm_type", "ada_norm_single") != "ada_norm_single":
      raise ValueError(f"PixArt needs norm_type='ada_norm_single', got {cfg['norm_type']!r}")
    if cfg.get("activation_fn", "gelu-approximate") != "gelu-approximate":
      raise ValueError(
          f"PixArt supports activation_fn='gelu-approximate', got {cfg['activation_fn']!r}")
    if cfg.get("norm_elementwise_affine", False):
      raise ValueError("PixArt with norm_elementwise_affine=True is not supported")
    if cfg.get("attention_type", "default") != "default":
      raise ValueError(f"PixArt supports attention_type='default', got {cfg['attention_type']!r}")
    sample_size = cfg.get("sample_size", 128)
    heads, head_dim = cfg.get("num_attention_heads", 16), cfg.get("attention_head_dim", 72)
    caption = cfg.get("caption_channels")
    cross = cfg.get("cross_attention_dim", 1152)
    if cross != heads * head_dim:
      raise ValueError(f"PixArt with cross_attention_dim={cross} != hidden size {heads * head_dim} "
                       f"is not supported")
    scale = cfg.get("interpolation_scale")
    extra = cfg.get("use_additional_conditions")
    in_channels = cfg.get("in_channels", 4)
    return cls(
        sample_size=sample_size, patch_size=cfg.get("patch_size", 2), in_channels=in_channels,
        out_channels=cfg.get("out_channels", 8) or in_channels,
        num_layers=cfg.get("num_layers", 28),
        num_heads=heads, head_dim=head_dim, caption_channels=caption,
        norm_eps=cfg.get("norm_eps", 1e-6),
        interpolation_scale=float(max(sample_size // 64, 1) if scale is None else scale),
        use_additional_conditions=bool(sample_size == 128 if extra is None else extra),
        attention_bias=cfg.get("attention_bias", True))


PRESETS: dict[str, PixArtConfig] = {
    "pixart-alpha-256": PixArtConfig(sample_size=32, interpolation_scale=0.5),
    "pixart-alpha-512": PixArtConfig(),
    "pixart-alpha-1024": PixArtConfig(sample_size=128, interpolation_scale=2.0,
                                      use_additional_conditions=True),
}


class PixArt(nn.Module):
  """(x: [B, H, W, C], t: [B], context: [B, S, D_text], context_mask: [B, S] bool | None)
  -> [B, H, W, out_channels].

  With use_additional_conditions also resolution: [B, 2] (height, width in pixels) and
  aspect_ratio: [B] or [B, 1] (height / width).
  """

  config: PixArtConfig

  @nn.compact
  def __call__(self, x: jax.Array, t: jax.Array, context: jax.Array,
               context_mask: jax.Array | None = None, resolution: jax.Array | None = None,
               aspect_ratio: jax.Array | None = None) -> jax.Array:
    cfg = self.config
    check_shape("x", x, (None, None, None, cfg.in_channels), "[B, H, W, in_channels]")
    b, height, width, _ = x.shape
    p = cfg.patch_size
    check_divisible("x", (height, width), (p, p), "height, width")
    check_shape("t", t, (b,), "[B] timesteps")
    check_shape("context", context, (b, None, cfg.context_dim), "[B, S, text width]")
    if context_mask is not None:
      check_shape("context_mask", context_mask, context.shape[:2], "[B, S] bool, True = keep")
    d, grid = cfg.hidden_size, (height // p, width // p)

    pos = sincos_2d(d, *grid, base_size=cfg.sample_size // p,
                    interpolation_scale=cfg.interpolation_scale)
    x = PatchEmbed((p, p), d, cfg.dtype, name="patch_embed")(x) + pos.astype(cfg.dtype)
    x = constrain(x, TOKENS)

    temb = TimestepEmbedder(d, 256, True, 0.0, name="time_embed")(t)
    if cfg.use_additional_conditions:
      temb = temb + self._micro_conditions(b, d, resolution, aspect_ratio)
    mod = AdaLNSingle(6, d, name="adaln_single")(temb)

    if cfg.caption_channels is not None:
      context = CaptionProjection(d, cfg.dtype, name="caption_proj")(context)
    context = constrain(context.astype(cfg.dtype), CONTEXT)

    blocks = scan_layers(DiTBlock, cfg.num_layers, in_axes=(nn.broadcast,) * 3,
                         remat_policy=cfg.remat_policy)
    x, _ = blocks(cfg.num_heads, cfg.head_dim, int(d * cfg.mlp_ratio), modulation="adaln_single",
                  eps_attn=cfg.norm_eps, eps_mlp=cfg.norm_eps, cross_attention=True,
                  attention_bias=cfg.attention_bias, dtype=cfg.dtype,
                  attention_impl=cfg.attention_impl, name="blocks")(x, mod, context, context_mask)

    shift, scale = chunks(ScaleShiftTable(2, name="final_table")(temb[:, None]))
    x = modulate(layer_norm(x, 1e-6), shift, scale).astype(cfg.dtype)
    x = Linear(p * p * cfg.out_channels, ("embed", None), dtype=cfg.dtype,
               kernel_init=nn.initializers.zeros_init(), name="proj_out")(x)
    return unpatchify(x, grid, (p, p))

  def _micro_conditions(self, b, d, resolution, aspect_ratio):
    """Embeds (height, width) and height/width like timesteps (PixArt-α §2.4): -> [B, D] f32."""
    if resolution is None or aspect_ratio is None:
      raise ValueError("this PixArt config uses the resolution/aspect-ratio micro-conditions: pass "
                       "resolution: [B, 2] (height, width) and aspect_ratio: [B] (height / width)")
    check_shape("resolution", resolution, (b, 2), "[B, 2] (height, width) in pixels")
    aspect_ratio = jnp.reshape(aspect_ratio, (-1,))
    check_shape("aspect_ratio", aspect_ratio, (b,), "[B] or [B, 1] height / width")
    res = TimestepEmbedder(d // 3, 256, True, 0.0, name="resolution_embed")(resolution.reshape(-1))
    ar = TimestepEmbedder(d // 3, 256, True, 0.0, name="aspect_ratio_embed")(aspect_ratio)
    return jnp.concatenate([res.reshape(b, -1), ar], axis=-1)


def convert_params(config: PixArtConfig, read: Callable[[str], np.ndarray]) -> dict:
  """diffusers PixArtTransformer2DModel state dict (read by name, float32) -> PixArt params."""
  r = TensorReader(read, "PixArt")
  d, p = config.hidden_size, config.patch_size
  mlp = int(d * config.mlp_ratio)

  def embedder(prefix, width):
    return {"linear_1": r.linear(f"{prefix}.linear_1", 256, width),
            "linear_2": r.linear(f"{prefix}.linear_2", width, width)}

  def block(i):
    pre = f"transformer_blocks.{i}"
    attn = lambda name, context_dim=None: r.attention(
        f"{pre}.{name}", d, config.num_heads, config.head_dim, context_dim, config.attention_bias)
    return {
        "table": {"table": r(f"{pre}.scale_shift_table", (6, d))},
        "self_attn": attn("attn1"),
        "cross_attn": attn("attn2", d),
        "mlp": {"up": r.linear(f"{pre}.ff.net.0.proj", d, mlp),
                "down": r.linear(f"{pre}.ff.net.2", mlp, d)},
    }

  params = {
      "patch_embed": r.patch_embed("pos_embed.proj", config.in_channels, d, (p, p)),
      "time_embed": embedder("adaln_single.emb.timestep_embedder", d),
      "adaln_single": {"linear": r.linear("adaln_single.linear", d, 6 * d)},
      "blocks": stack_layers(config.num_layers, block),
      "final_table": {"table": r("scale_shift_table", (2, d))},
      "proj_out": r.linear("proj_out", d, p * p * config.out_channels),
  }
  if config.use_additional_conditions:
    params["resolution_embed"] = embedder("adaln_single.emb.resolution_embedder", d // 3)
    params["aspect_ratio_embed"] = embedder("adaln_single.emb.aspect_ratio_embedder", d // 3)
  if config.caption_channels is not None:
    params["caption_proj"] = {
        "linear_1": r.linear("caption_projection.linear_1", config.caption_channels, d),
        "linear_2": r.linear("caption_projection.linear_2", d, d)}
  return params
