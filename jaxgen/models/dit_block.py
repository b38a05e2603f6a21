"""The transformer block shared by DiT, PixArt-α and Wan 2.1, with full or factorized attention.

    x += gate_msa · SelfAttn(modulate(LN(x), shift_msa, scale_msa))
   [x += gate_msa · TemporalAttn(modulate(LN(x), shift_msa, scale_msa))]  factorized only
   [x += CrossAttn(LN?(x), context)]                                        text-conditioned only
    x += gate_mlp · Mlp(modulate(LN(x), shift_mlp, scale_mlp))

The six modulation vectors come from the conditioning: adaLN-Zero (DiT: a per-block SiLU-Linear of
c: [B, D]) or adaLN-single (PixArt-α, Wan 2.1: c: [B, 6, D] shared by all blocks, plus a per-block
table).
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.nn.attention import Attention
from jaxgen.nn.axes import TOKENS, constrain
from jaxgen.nn.mlp import Mlp
from jaxgen.nn.modulation import AdaLNZero, chunks, modulate, ScaleShiftTable
from jaxgen.nn.norms import layer_norm, LayerNorm

MODULATIONS = ("adaln_zero", "adaln_single")
ATTENTIONS = ("full", "factorized")


def _residual(x: jax.Array, gate: jax.Array, branch: jax.Array) -> jax.Array:
  """x + gate · branch, added in float32 and returned in x's dtype."""
  return (x.astype(jnp.float32) + gate * branch.astype(jnp.float32)).astype(x.dtype)


class DiTBlock(nn.Module):
  """One block: x: [B, L, D] -> ([B, L, D], None), the (carry, output) pair nn.scan expects.

  c: [B, D] (adaln_zero) or [B, 6, D] (adaln_single); context: [B, S, D] text tokens when
  cross_attention; mask: [B, S] bool; rope: (cos, sin) [L, head_dim/2] or None.
  With factorized_grid = (T, H, W), self-attention runs within each frame and a temporal attention
  across frames follows (STDiT, Open-Sora 1.0; Make-A-Video); its zero-initialised output projection
  makes a freshly added temporal layer the identity. temporal=False leaves it out.
  """

  num_heads: int
  head_dim: int
  mlp_hidden: int
  modulation: str = "adaln_single"  # One of MODULATIONS.
  eps_attn: float = 1e-6  # LayerNorm eps before self-attention.
  eps_mlp: float = 1e-6  # LayerNorm eps before the MLP.
  cross_attention: bool = False
  cross_norm: bool = False  # Affine LayerNorm before cross-attention (Wan 2.1); PixArt-α has none.
  cross_norm_eps: float = 1e-6
  qk_norm: str | None = None
  attention_bias: bool = True
  factorized_grid: tuple[int, int, int] | None = None  # Token grid (T, H, W): factorized attention.
  temporal: bool = True  # With factorized_grid: include the temporal attention.
  dtype: Any = jnp.float32
  attention_impl: str | None = None

  def _attention(self, name: str, zero_init_out: bool = False) -> Attention:
    return Attention(self.num_heads, self.head_dim, qk_norm=self.qk_norm, qk_norm_eps=self.eps_attn,
                     use_bias=self.attention_bias, zero_init_out=zero_init_out, dtype=self.dtype,
                     implementation=self.attention_impl, name=name)

  @nn.compact
  def __call__(self, x: jax.Array, c: jax.Array, context: jax.Array | None = None,
               mask: jax.Array | None = None,
               rope: tuple[jax.Array, jax.Array] | None = None) -> tuple[jax.Array, None]:
    if self.modulation not in MODULATIONS:
      raise ValueError(f"modulation={self.modulation!r}; expected one of {MODULATIONS}")
    d = x.shape[-1]
    if self.modulation == "adaln_zero":
      mod = AdaLNZero(6, d, name="adaln")(c)
    else:
      mod = ScaleShiftTable(6, name="table")(c)
    shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = chunks(mod)

    h = modulate(layer_norm(x, self.eps_attn), shift_msa, scale_msa).astype(self.dtype)
    if self.factorized_grid is None:
      x = _residual(x, gate_msa, self._attention("self_attn")(h, rope=rope))
    else:
      x = self._factorized(x, h, shift_msa, scale_msa, gate_msa, rope)
    x = constrain(x, TOKENS)

    if self.cross_attention:
      h = x
      if self.cross_norm:
        h = LayerNorm(self.cross_norm_eps, name="cross_norm")(x).astype(self.dtype)
      x = x + self._attention("cross_attn")(h, context, mask).astype(x.dtype)

    h = modulate(layer_norm(x, self.eps_mlp), shift_mlp, scale_mlp).astype(self.dtype)
    x = _residual(x, gate_mlp, Mlp(self.mlp_hidden, "gelu_tanh", self.dtype, name="mlp")(h))
    return constrain(x, TOKENS), None

  def _factorized(self, x, h, shift, scale, gate, rope):
    """Spatial attention within frames, then temporal attention across frames: [B, L, D] -> same."""
    b, _, d = x.shape
    t, hh, ww = self.factorized_grid
    s = hh * ww
    # Within a frame all tokens share t, so its rotation cancels in q·k: frame 0's table serves
    # every frame; across frames the (t, 0, 0) rows serve every spatial site.
    rope_s = None if rope is None else tuple(r[:s] for r in rope)
    rope_t = None if rope is None else tuple(r[::s] for r in rope)
    out = self._attention("self_attn")(h.reshape(b * t, s, d), rope=rope_s)
    x = _residual(x, gate, out.reshape(b, t * s, d))
    if not self.temporal:
      return x
    h = modulate(layer_norm(x, self.eps_attn), shift, scale).astype(self.dtype)
    h = h.reshape(b, t, s, d).transpose(0, 2, 1, 3).reshape(b * s, t, d)
    out = self._attention("temporal_attn", zero_init_out=True)(h, rope=rope_t)
    out = out.reshape(b, s, t, d).transpose(0, 2, 1, 3).reshape(b, t * s, d)
    return _residual(x, gate, out)
