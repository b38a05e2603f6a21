"""Wan 2.1 text-to-video diffusion transformer (Wan Team 2025), with optional factorized attention.

Port of diffusers' WanTransformer3DModel (text-to-video): (1, 2, 2) spacetime patches, 3D RoPE
splitting the head dim over t/h/w, self-attention with QK RMSNorm across heads, cross-attention to
umT5 tokens, and one shared time projection to six modulation vectors plus a learned per-block bias.
attention="factorized" swaps full spacetime self-attention for spatial-then-temporal attention
(STDiT / Make-A-Video), whose temporal layers start as the identity.
"""

from collections.abc import Callable
import dataclasses
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.models.dit_block import ATTENTIONS, DiTBlock
from jaxgen.models.dit_common import check_divisible, check_shape, finish_config, stack_layers
from jaxgen.models.dit_common import TensorReader
from jaxgen.nn.attention import QK_NORMS
from jaxgen.nn.axes import CONTEXT, TOKENS, constrain
from jaxgen.nn.embeddings import CaptionProjection, PooledTextEmbed, TimestepEmbedder
from jaxgen.nn.linear import Linear
from jaxgen.nn.modulation import AdaLNSingle, chunks, modulate, ScaleShiftTable
from jaxgen.nn.norms import layer_norm
from jaxgen.nn.patch import PatchEmbed, unpatchify
from jaxgen.nn.positions import sincos_3d
from jaxgen.nn.rope import rope_3d
from jaxgen.nn.scan import scan_layers

POS_EMBEDS = (None, "sincos")  # absolute position embeddings besides RoPE


@dataclasses.dataclass(frozen=True)
class WanConfig:
  """Wan 2.1 video DiT hyper-parameters; defaults are the 1.3B text-to-video model."""

  patch_size: tuple[int, int, int] = (1, 2, 2)  # (t, h, w)
  in_channels: int = 16
  out_channels: int = 16
  num_layers: int = 30
  num_heads: int = 12
  head_dim: int = 128
  ffn_dim: int = 8960
  text_dim: int = 4096  # umT5-XXL width.
  freq_dim: int = 256  # Width of the sinusoidal timestep embedding.
  cross_attn_norm: bool = True  # Affine LayerNorm before cross-attention.
  qk_norm: str | None = "rms_norm_across_heads"  # One of jaxgen.nn.attention.QK_NORMS.
  eps: float = 1e-6
  rope_max_seq_len: int = 1024  # Largest token grid side the RoPE tables were made for.
  rope_theta: float = 10000.0
  attention: str = "full"  # "full" spacetime attention or "factorized" spatial-then-temporal.
  dtype: Any = jnp.float32  # Compute dtype; params are float32.
  remat_policy: str = "none"  # One of jaxgen.nn.scan.REMAT_POLICIES.
  attention_impl: str | None = None  # One of jaxgen.nn.attention.IMPLEMENTATIONS.
  # An extension, not in Wan 2.1: a pooled text embedding of this width (e.g. CLIP's EOS state)
  # projected and added to the timestep embedding, as SD3 does, so the caption reaches every
  # block's adaLN modulation and not only cross-attention. None: Wan 2.1's model.
  pooled_text_dim: int | None = None
  # Another extension: "sincos" adds fixed 3D sin-cos position embeddings to the patch tokens
  # (Latte, Open-Sora), with the same base rope_theta as RoPE. Wan 2.1 has RoPE only. On a tiny
  # latent grid (4×4 per frame) θ = 10⁴ wastes both: most frequencies barely turn across it (the
  # sin-cos table varies by only 2.5 of its norm 8 over 9×4×4 positions); θ ≈ 10 spreads them.
  pos_embed: str | None = None

  def __post_init__(self):
    finish_config(self)
    if self.pos_embed not in POS_EMBEDS:
      raise ValueError(f"pos_embed={self.pos_embed!r}; expected one of {POS_EMBEDS}")
    if self.attention not in ATTENTIONS:
      raise ValueError(f"attention={self.attention!r}; expected one of {ATTENTIONS}")
    if self.qk_norm not in QK_NORMS:
      raise ValueError(f"qk_norm={self.qk_norm!r}; expected one of {QK_NORMS}")
    if len(self.patch_size) != 3:
      raise ValueError(f"patch_size={self.patch_size}; expected (t, h, w)")
    if self.head_dim % 2:
      raise ValueError(f"head_dim={self.head_dim} must be even (rotary pairs)")

  @property
  def hidden_size(self) -> int:
    return self.num_heads * self.head_dim

  @classmethod
  def from_diffusers(cls, cfg: dict) -> "WanConfig":
    """From a diffusers WanTransformer3DModel config.json dict (text-to-video variants)."""
    if cfg.get("image_dim") is not None or cfg.get("added_kv_proj_dim") is not None:
      raise ValueError("Wan image-to-video checkpoints (image_dim / added_kv_proj_dim set) are not "
                       "supported; use a text-to-video checkpoint")
    if cfg.get("pos_embed_seq_len") is not None:
      raise ValueError("Wan with pos_embed_seq_len (image embedding positions) is not supported")
    in_channels = cfg.get("in_channels", 16)
    return cls(
        patch_size=tuple(cfg.get("patch_size", (1, 2, 2))), in_channels=in_channels,
        out_channels=cfg.get("out_channels") or in_channels, num_layers=cfg.get("num_layers", 40),
        num_heads=cfg.get("num_attention_heads", 40), head_dim=cfg.get("attention_head_dim", 128),
        ffn_dim=cfg.get("ffn_dim", 13824), text_dim=cfg.get("text_dim", 4096),
        freq_dim=cfg.get("freq_dim", 256), cross_attn_norm=cfg.get("cross_attn_norm", True),
        # diffusers' WanAttention always normalises q and k across heads, whatever qk_norm says.
        qk_norm="rms_norm_across_heads", eps=cfg.get("eps", 1e-6),
        rope_max_seq_len=cfg.get("rope_max_seq_len", 1024))


PRESETS: dict[str, WanConfig] = {
    "wan2.1-t2v-1.3b": WanConfig(),
    "wan2.1-t2v-14b": WanConfig(num_layers=40, num_heads=40, ffn_dim=13824),
}


class Wan(nn.Module):
  """(x: [B, T, H, W, C], t: [B], context: [B, S, text_dim], context_mask: [B, S] bool | None,
  pooled: [B, pooled_text_dim] | None) -> [B, T, H, W, out_channels].

  Wan 2.1 pads its umT5 context with zeros and uses no mask; context_mask is an extension for models
  trained with one.
  """

  config: WanConfig

  @nn.compact
  def __call__(self, x: jax.Array, t: jax.Array, context: jax.Array,
               context_mask: jax.Array | None = None,
               pooled: jax.Array | None = None) -> jax.Array:
    cfg = self.config
    check_shape("x", x, (None, None, None, None, cfg.in_channels), "[B, T, H, W, in_channels]")
    b = x.shape[0]
    check_shape("t", t, (b,), "[B] timesteps")
    if (pooled is None) != (cfg.pooled_text_dim is None):
      raise ValueError(f"pooled is {'None' if pooled is None else 'given'} but the config has "
                       f"pooled_text_dim={cfg.pooled_text_dim}; pass pooled [B, pooled_text_dim] "
                       "exactly when pooled_text_dim is set")
    if pooled is not None:
      check_shape("pooled", pooled, (b, cfg.pooled_text_dim), "[B, pooled_text_dim]")
    h, grid, rope = embed_patches(cfg, x)
    temb = TimestepEmbedder(cfg.hidden_size, cfg.freq_dim, True, 0.0, name="time_embed")(t)
    if pooled is not None:
      temb = temb + PooledTextEmbed(cfg.hidden_size, name="pooled_text_embed")(pooled)
    return denoise_tokens(cfg, h, temb, context, context_mask, grid, rope)


# The two halves of Wan's forward pass, as functions that create their layers in the calling
# module's compact __call__ (which then holds their params under these names): Wan calls them around
# its timestep embedding, and modules that add other conditioning to that embedding (the cascade's
# super-resolution stages, jaxgen.models.superres) reuse them with the same parameter layout.


def embed_patches(cfg: WanConfig, x: jax.Array) -> tuple[jax.Array, tuple[int, int, int], tuple]:
  """x [B, T, H, W, in_channels] -> (tokens [B, N, hidden_size], token grid, RoPE tables)."""
  check_divisible("x", x.shape[1:4], cfg.patch_size, "frames, height, width")
  grid = tuple(s // p for s, p in zip(x.shape[1:4], cfg.patch_size))
  if max(grid) > cfg.rope_max_seq_len:
    raise ValueError(f"x has a token grid {list(grid)} (frames, height, width after patching); "
                     f"each side must be at most rope_max_seq_len={cfg.rope_max_seq_len}")
  d = cfg.hidden_size
  rope = tuple(jnp.asarray(r) for r in rope_3d(grid, cfg.head_dim, cfg.rope_theta))
  h = PatchEmbed(cfg.patch_size, d, cfg.dtype, name="patch_embed")(x)
  if cfg.pos_embed == "sincos":
    h = h + jnp.asarray(sincos_3d(d, *grid, theta=cfg.rope_theta).reshape(1, -1, d), h.dtype)
  return constrain(h, TOKENS), grid, rope


def denoise_tokens(cfg: WanConfig, h: jax.Array, temb: jax.Array, context: jax.Array,
                   context_mask: jax.Array | None, grid: tuple[int, int, int],
                   rope: tuple) -> jax.Array:
  """The blocks and output layer over tokens h [B, N, d], modulated by temb [B, d] and attending to
  context [B, S, text_dim] -> [B, T, H, W, out_channels]."""
  check_shape("context", context, (h.shape[0], None, cfg.text_dim), "[B, S, text_dim]")
  if context_mask is not None:
    check_shape("context_mask", context_mask, context.shape[:2], "[B, S] bool, True = keep")
  d = cfg.hidden_size
  mod = AdaLNSingle(6, d, name="time_proj")(temb)
  context = CaptionProjection(d, cfg.dtype, name="text_embed")(context.astype(cfg.dtype))
  context = constrain(context, CONTEXT)

  blocks = scan_layers(DiTBlock, cfg.num_layers, in_axes=(nn.broadcast,) * 4,
                       remat_policy=cfg.remat_policy)
  h, _ = blocks(
      cfg.num_heads, cfg.head_dim, cfg.ffn_dim, modulation="adaln_single", eps_attn=cfg.eps,
      eps_mlp=cfg.eps, cross_attention=True, cross_norm=cfg.cross_attn_norm,
      cross_norm_eps=cfg.eps,
      qk_norm=cfg.qk_norm, factorized_grid=grid if cfg.attention == "factorized" else None,
      dtype=cfg.dtype, attention_impl=cfg.attention_impl, name="blocks",
  )(h, mod, context, context_mask, rope)

  shift, scale = chunks(ScaleShiftTable(2, name="final_table")(temb[:, None]))
  h = modulate(layer_norm(h, cfg.eps), shift, scale).astype(cfg.dtype)
  h = Linear(math.prod(cfg.patch_size) * cfg.out_channels, ("embed", None), dtype=cfg.dtype,
             kernel_init=nn.initializers.zeros_init(), name="proj_out")(h)
  return unpatchify(h, grid, cfg.patch_size)


def convert_params(config: WanConfig, read: Callable[[str], np.ndarray]) -> dict:
  """diffusers WanTransformer3DModel state dict (read by name, float32) -> Wan params."""
  if config.attention != "full":
    raise ValueError("Wan checkpoints convert to attention='full'; a factorized model has temporal "
                     "layers no checkpoint holds")
  if config.qk_norm != "rms_norm_across_heads":
    raise ValueError(f"Wan checkpoints have qk_norm='rms_norm_across_heads', config has "
                     f"{config.qk_norm!r}")
  r = TensorReader(read, "Wan")
  d, n, h = config.hidden_size, config.num_heads, config.head_dim

  def block(i):
    pre = f"blocks.{i}"
    attn = lambda name, context_dim=None: r.attention(
        f"{pre}.{name}", d, n, h, context_dim, qk_norm="rms_norm_across_heads")
    out = {
        "table": {"table": r(f"{pre}.scale_shift_table", (1, 6, d))[0]},
        "self_attn": attn("attn1"),
        "cross_attn": attn("attn2", d),
        "mlp": {"up": r.linear(f"{pre}.ffn.net.0.proj", d, config.ffn_dim),
                "down": r.linear(f"{pre}.ffn.net.2", config.ffn_dim, d)},
    }
    if config.cross_attn_norm:
      out["cross_norm"] = {"scale": r(f"{pre}.norm2.weight", (d,)),
                           "bias": r(f"{pre}.norm2.bias", (d,))}
    return out

  emb = "condition_embedder"
  return {
      "patch_embed": r.patch_embed("patch_embedding", config.in_channels, d, config.patch_size),
      "time_embed": {"linear_1": r.linear(f"{emb}.time_embedder.linear_1", config.freq_dim, d),
                     "linear_2": r.linear(f"{emb}.time_embedder.linear_2", d, d)},
      "time_proj": {"linear": r.linear(f"{emb}.time_proj", d, 6 * d)},
      "text_embed": {"linear_1": r.linear(f"{emb}.text_embedder.linear_1", config.text_dim, d),
                     "linear_2": r.linear(f"{emb}.text_embedder.linear_2", d, d)},
      "blocks": stack_layers(config.num_layers, block),
      "final_table": {"table": r("scale_shift_table", (1, 2, d))[0]},
      "proj_out": r.linear("proj_out", d, math.prod(config.patch_size) * config.out_channels),
  }
