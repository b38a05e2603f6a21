"""T5 encoder (Raffel et al. 2020) and umT5 encoder (Chung et al. 2023), as transformers'
`T5EncoderModel` / `UMT5EncoderModel`.

Both are pre-norm transformers with RMS "T5 layer norm", unscaled dot-product attention and a
learned relative position bias over log-spaced buckets. T5 learns one bias table in layer 0 and
shares it with every layer; umT5 learns one per layer (`per_layer_position_bias`).
"""

from collections.abc import Callable
import dataclasses
import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.nn import scan
from jaxgen.zoo import conversion

ACTIVATIONS = {
    "relu": jax.nn.relu,  # T5 v1.0.
    "gelu_new": functools.partial(jax.nn.gelu, approximate=True),  # v1.1 and umT5 ("gated-gelu").
    "gelu_pytorch_tanh": functools.partial(jax.nn.gelu, approximate=True),
    "gelu": functools.partial(jax.nn.gelu, approximate=False),
    "silu": jax.nn.silu,
}


@dataclasses.dataclass(frozen=True)
class T5Config:
  """Hyper-parameters of a T5/umT5 encoder (defaults: T5 v1.1 XXL's encoder)."""
  vocab_size: int = 32128
  d_model: int = 4096
  d_kv: int = 64  # Head dim; num_heads * d_kv need not equal d_model.
  d_ff: int = 10240
  num_layers: int = 24
  num_heads: int = 64
  relative_attention_num_buckets: int = 32
  relative_attention_max_distance: int = 128
  dense_act_fn: str = "gelu_new"
  is_gated_act: bool = True  # v1.1/umT5: act(x W_0) * (x W_1) (Shazeer 2020, GEGLU).
  layer_norm_epsilon: float = 1e-6
  per_layer_position_bias: bool = False  # umT5: True.
  dtype: Any = jnp.float32  # Compute dtype; params, norms, softmax and residuals stay float32.
  remat_policy: str = "none"  # A jaxgen.nn.scan.REMAT_POLICIES name.

  def __post_init__(self):
    if self.dense_act_fn not in ACTIVATIONS:
      raise ValueError(f"dense_act_fn={self.dense_act_fn!r}; expected one of {sorted(ACTIVATIONS)}")
    scan.check_remat_policy(self.remat_policy)

  @classmethod
  def from_transformers(cls, cfg: dict) -> "T5Config":
    """From a `T5EncoderModel` / `UMT5EncoderModel` config.json dict."""
    umt5 = cfg.get("model_type") == "umt5" or "UMT5EncoderModel" in (cfg.get("architectures") or ())
    # As transformers' T5Config: "gated-gelu" means the tanh GELU, "gated-X" / "X" name the act.
    proj = cfg.get("feed_forward_proj", "gated-gelu" if umt5 else "relu")
    act = proj.split("-")
    if len(act) > 2 or (len(act) == 2 and act[0] != "gated"):
      raise ValueError(f"feed_forward_proj={proj!r}; expected 'ACT' or 'gated-ACT'")
    return cls(
        vocab_size=cfg.get("vocab_size", 32128),
        d_model=cfg.get("d_model", 512),
        d_kv=cfg.get("d_kv", 64),
        d_ff=cfg.get("d_ff", 2048),
        num_layers=cfg.get("num_layers", 6),
        num_heads=cfg.get("num_heads", 8),
        relative_attention_num_buckets=cfg.get("relative_attention_num_buckets", 32),
        relative_attention_max_distance=cfg.get("relative_attention_max_distance", 128),
        dense_act_fn="gelu_new" if proj == "gated-gelu" else act[-1],
        is_gated_act=act[0] == "gated",
        layer_norm_epsilon=cfg.get("layer_norm_epsilon", 1e-6),
        per_layer_position_bias=umt5,
    )


PRESETS: dict[str, T5Config] = {
    # google/t5-v1_1-xxl's encoder: PixArt-alpha's text encoder.
    "t5-v1_1-xxl": T5Config(),
    # google/umt5-xxl's encoder: Wan 2.1's text encoder.
    "umt5-xxl": T5Config(vocab_size=256384, per_layer_position_bias=True),
}


def relative_position_buckets(length: int, num_buckets: int, max_distance: int) -> np.ndarray:
  """Bidirectional T5 bucket of (key - query) offsets: [L, L] int32, a trace-time constant.

  Half the buckets per direction are exact offsets, the other half log-spaced up to
  `max_distance` (Raffel et al. 2020, Sec. 2.1); computed in float32 like the reference.
  """
  offset = np.arange(length)[None, :] - np.arange(length)[:, None]
  half = num_buckets // 2
  max_exact = half // 2
  distance = np.abs(offset)
  log_ratio = (np.log(np.maximum(distance, 1).astype(np.float32) / np.float32(max_exact))
               / np.float32(math.log(max_distance / max_exact)) * np.float32(half - max_exact))
  large = np.minimum(max_exact + log_ratio.astype(np.int64), half - 1)
  return ((offset > 0) * half + np.where(distance < max_exact, distance, large)).astype(np.int32)


class RelativePositionBias(nn.Module):
  """Learned per-head bias from relative-position buckets."""
  config: T5Config

  @nn.compact
  def __call__(self, length: int) -> jax.Array:
    """Returns the additive attention bias [1, N, L, L] float32."""
    cfg = self.config
    table = self.param(
        "embedding", nn.with_logical_partitioning(nn.initializers.normal(1.0), (None, "heads")),
        (cfg.relative_attention_num_buckets, cfg.num_heads), jnp.float32)
    buckets = relative_position_buckets(length, cfg.relative_attention_num_buckets,
                                        cfg.relative_attention_max_distance)
    return jnp.transpose(table[buckets], (2, 0, 1))[None]


def _dense(features, names, dtype, name, axis=-1):
  """A bias-free DenseGeneral whose kernel carries logical axis names."""
  return nn.DenseGeneral(
      features, axis=axis, use_bias=False, dtype=dtype, name=name,
      kernel_init=nn.with_logical_partitioning(nn.initializers.lecun_normal(), names))


def _rms_norm(config: T5Config, name: str) -> nn.RMSNorm:
  """T5's layer norm: scale-only RMS normalisation (Zhang & Sennrich 2019), in float32."""
  return nn.RMSNorm(
      epsilon=config.layer_norm_epsilon, dtype=jnp.float32, name=name,
      scale_init=nn.with_logical_partitioning(nn.initializers.ones_init(), ("norm",)))


class T5EncoderLayer(nn.Module):
  """x + attn(norm(x), bias); x + FF(norm(x)). The scan body (carry, None)."""
  config: T5Config

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array | None, bias: jax.Array | None):
    """x: [B, L, D] float32; mask: [B, 1, 1, L] bool or None; bias: [1, N, L, L] or None (umT5)."""
    cfg = self.config
    if cfg.per_layer_position_bias:
      bias = RelativePositionBias(cfg, name="relative_attention_bias")(x.shape[1])
    heads = (cfg.num_heads, cfg.d_kv)
    h = _rms_norm(cfg, "attn_norm")(x)
    q, k, v = (nn.with_logical_constraint(
        _dense(heads, ("embed", "heads", "kv"), cfg.dtype, n)(h),
        ("batch", "length", "heads", "kv")) for n in ("query", "key", "value"))
    # No 1/sqrt(d) scaling: T5 folds it into the initialisation of the query weights.
    attn = jax.nn.dot_product_attention(q, k, v, bias=bias, mask=mask, scale=1.0)
    attn = _dense(cfg.d_model, ("heads", "kv", "embed"), cfg.dtype, "out", axis=(-2, -1))(attn)
    x = nn.with_logical_constraint(x + attn.astype(jnp.float32), ("batch", "length", "embed"))

    h = _rms_norm(cfg, "ff_norm")(x)
    act = ACTIVATIONS[cfg.dense_act_fn]
    if cfg.is_gated_act:
      h = (act(_dense(cfg.d_ff, ("embed", "mlp"), cfg.dtype, "wi_0")(h))
           * _dense(cfg.d_ff, ("embed", "mlp"), cfg.dtype, "wi_1")(h))
    else:
      h = act(_dense(cfg.d_ff, ("embed", "mlp"), cfg.dtype, "wi")(h))
    h = nn.with_logical_constraint(h, ("batch", "length", "mlp"))
    # The residual stream stays float32: T5's FF output overflows float16 (not bfloat16, whose
    # range is float32's, but precision over 24 layers matters too).
    h = _dense(cfg.d_model, ("mlp", "embed"), cfg.dtype, "wo")(h)
    x = x + h.astype(jnp.float32)
    return nn.with_logical_constraint(x, ("batch", "length", "embed")), None


class T5Encoder(nn.Module):
  """T5 / umT5 encoder stack: token ids -> last hidden states."""
  config: T5Config

  @nn.compact
  def __call__(self, input_ids: jax.Array, attention_mask: jax.Array | None = None) -> jax.Array:
    """input_ids: [B, L] int; attention_mask: [B, L] (1 = token, 0 = padding) or None.

    Returns last_hidden_state [B, L, D] float32.
    """
    cfg = self.config
    if input_ids.ndim != 2:
      raise ValueError(f"input_ids has shape {input_ids.shape}; expected [batch, length]")
    if attention_mask is not None and attention_mask.shape != input_ids.shape:
      raise ValueError(f"attention_mask has shape {attention_mask.shape}; expected "
                       f"input_ids' shape {input_ids.shape}")
    x = nn.Embed(cfg.vocab_size, cfg.d_model, name="token_embedding", embedding_init=(
        nn.with_logical_partitioning(nn.initializers.normal(1.0), ("vocab", "embed"))))(input_ids)
    x = nn.with_logical_constraint(x, ("batch", "length", "embed"))
    bias = None
    if not cfg.per_layer_position_bias:
      bias = RelativePositionBias(cfg, name="relative_attention_bias")(input_ids.shape[1])
    mask = None if attention_mask is None else attention_mask.astype(bool)[:, None, None, :]
    layers = scan.scan_layers(T5EncoderLayer, cfg.num_layers, (nn.broadcast, nn.broadcast),
                              cfg.remat_policy)
    x, _ = layers(cfg, name="layers")(x, mask, bias)
    return _rms_norm(cfg, "final_layer_norm")(x)


def convert_params(config: T5Config, read: Callable[[str], np.ndarray]) -> dict:
  """transformers `T5EncoderModel`/`UMT5EncoderModel` state dict (via `read`) -> our params."""
  # The token table is tied: "shared.weight" and/or "encoder.embed_tokens.weight" is saved.
  read = conversion.with_fallback(
      read, lambda n: "encoder.embed_tokens.weight" if n == "shared.weight" else n)
  take = conversion.checked(read, config)
  d, n, h = config.d_model, config.num_heads, config.d_kv

  def linear(name, d_in, d_out, shape):
    return {"kernel": take(name, (d_out, d_in)).T.reshape(shape)}

  def bias_table(name):
    return {"embedding": take(name, (config.relative_attention_num_buckets, n))}

  def layer(i):
    attn = f"encoder.block.{i}.layer.0."
    ff = f"encoder.block.{i}.layer.1."
    params = {
        "attn_norm": {"scale": take(attn + "layer_norm.weight", (d,))},
        "query": linear(attn + "SelfAttention.q.weight", d, n * h, (d, n, h)),
        "key": linear(attn + "SelfAttention.k.weight", d, n * h, (d, n, h)),
        "value": linear(attn + "SelfAttention.v.weight", d, n * h, (d, n, h)),
        "out": linear(attn + "SelfAttention.o.weight", n * h, d, (n, h, d)),
        "ff_norm": {"scale": take(ff + "layer_norm.weight", (d,))},
        "wo": linear(ff + "DenseReluDense.wo.weight", config.d_ff, d, (config.d_ff, d)),
    }
    if config.is_gated_act:
      for w in ("wi_0", "wi_1"):
        params[w] = linear(ff + f"DenseReluDense.{w}.weight", d, config.d_ff, (d, config.d_ff))
    else:
      params["wi"] = linear(ff + "DenseReluDense.wi.weight", d, config.d_ff, (d, config.d_ff))
    if config.per_layer_position_bias:
      params["relative_attention_bias"] = bias_table(
          attn + "SelfAttention.relative_attention_bias.weight")
    return params

  params = {
      "token_embedding": {"embedding": take("shared.weight", (config.vocab_size, d))},
      "layers": conversion.stack_layers(layer, config.num_layers),
      "final_layer_norm": {"scale": take("encoder.final_layer_norm.weight", (d,))},
  }
  if not config.per_layer_position_bias:
    params["relative_attention_bias"] = bias_table(
        "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight")
  return params
