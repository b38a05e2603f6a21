"""CLIP's text encoder (Radford et al. 2021), as transformers' `CLIPTextModel`: a causal pre-LN
transformer whose pooled output is the final-norm state at the EOS token; optionally
bidirectional (`causal=False`)."""

from collections.abc import Callable
import dataclasses
import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.nn import scan
from jaxgen.zoo import conversion

# transformers' ACT2FN names; "gelu" is the exact erf GELU, "gelu_new" the tanh approximation.
ACTIVATIONS = {
    "quick_gelu": lambda x: x * jax.nn.sigmoid(1.702 * x),
    "gelu": functools.partial(jax.nn.gelu, approximate=False),
    "gelu_new": functools.partial(jax.nn.gelu, approximate=True),
    "gelu_pytorch_tanh": functools.partial(jax.nn.gelu, approximate=True),
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
}


@dataclasses.dataclass(frozen=True)
class CLIPTextConfig:
  """Hyper-parameters of the CLIP text transformer (defaults: ViT-L/14's, used by SD 1.x)."""
  vocab_size: int = 49408
  hidden_size: int = 768
  intermediate_size: int = 3072
  num_layers: int = 12
  num_heads: int = 12
  max_length: int = 77  # Learned positions: the longest token sequence.
  hidden_act: str = "quick_gelu"
  layer_norm_eps: float = 1e-5
  eos_token_id: int = 2  # 2 = the original checkpoints: pool at argmax(id), the EOS token's id.
  dtype: Any = jnp.float32  # Compute dtype; params and the residual stream stay float32.
  remat_policy: str = "none"  # A jaxgen.nn.scan.REMAT_POLICIES name.
  # CLIP's attention is causal (GPT-style): a word's state cannot see the words after it, so in
  # "the digit 5 slides down, in orange" the 5 never learns its colour. False: each token attends
  # to the whole caption, as in T5's encoder (Imagen's, PixArt's and Wan's text encoder).
  causal: bool = True
  # Local attention (Longformer's sliding window): a token attends only to tokens at most this
  # many positions away; None: to the whole caption. From initialisation each word's state then
  # mixes the words of its own phrase, not the other's ("a red 3 ... and a blue 7": the 3 carries
  # red, the 7 blue), which a DiT can bind to what it draws before the encoder has learnt to.
  attention_window: int | None = None

  def __post_init__(self):
    if self.hidden_size % self.num_heads:
      raise ValueError(f"hidden_size={self.hidden_size} must be divisible by "
                       f"num_heads={self.num_heads}")
    if self.hidden_act not in ACTIVATIONS:
      raise ValueError(f"hidden_act={self.hidden_act!r}; expected one of {sorted(ACTIVATIONS)}")
    scan.check_remat_policy(self.remat_policy)
    if self.attention_window is not None and (
        not isinstance(self.attention_window, int) or self.attention_window < 1):
      raise ValueError(f"attention_window={self.attention_window!r}; expected a positive int "
                       f"(the farthest position a token attends to) or None")

  @property
  def head_dim(self) -> int:
    return self.hidden_size // self.num_heads

  @classmethod
  def from_transformers(cls, cfg: dict) -> "CLIPTextConfig":
    """From a `CLIPTextModel` config.json dict (or a full `CLIPModel` one: its text_config)."""
    cfg = cfg.get("text_config") or cfg
    return cls(
        vocab_size=cfg.get("vocab_size", 49408),
        hidden_size=cfg.get("hidden_size", 512),
        intermediate_size=cfg.get("intermediate_size", 2048),
        num_layers=cfg.get("num_hidden_layers", 12),
        num_heads=cfg.get("num_attention_heads", 8),
        max_length=cfg.get("max_position_embeddings", 77),
        hidden_act=cfg.get("hidden_act", "quick_gelu"),
        layer_norm_eps=cfg.get("layer_norm_eps", 1e-5),
        eos_token_id=cfg.get("eos_token_id", 49407),
    )


PRESETS: dict[str, CLIPTextConfig] = {
    # openai/clip-vit-large-patch14: the text_encoder/ of Stable Diffusion 1.x.
    "clip-vit-l-14-text": CLIPTextConfig(),
}


def _dense(features, names, dtype, name, axis=-1):
  """A DenseGeneral whose kernel (`names`) and bias (the output part of `names`) are named."""
  n_out = len(features) if isinstance(features, tuple) else 1
  return nn.DenseGeneral(
      features, axis=axis, dtype=dtype, name=name,
      kernel_init=nn.with_logical_partitioning(nn.initializers.lecun_normal(), names),
      bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), names[-n_out:]))


def _layer_norm(config: CLIPTextConfig, name: str) -> nn.LayerNorm:
  return nn.LayerNorm(
      epsilon=config.layer_norm_eps, dtype=jnp.float32, use_fast_variance=False, name=name,
      scale_init=nn.with_logical_partitioning(nn.initializers.ones_init(), ("norm",)),
      bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), ("norm",)))


class CLIPEncoderLayer(nn.Module):
  """Pre-LN block: x + attn(LN(x)), then x + MLP(LN(x)); the scan body (carry, None)."""
  config: CLIPTextConfig

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array | None):
    """x: [B, L, D] float32; mask: [B, 1, 1, L] bool (True = a real token) or None."""
    cfg = self.config
    heads = (cfg.num_heads, cfg.head_dim)
    h = _layer_norm(cfg, "layer_norm1")(x)
    q, k, v = (nn.with_logical_constraint(
        _dense(heads, ("embed", "heads", "kv"), cfg.dtype, n)(h),
        ("batch", "length", "heads", "kv")) for n in ("query", "key", "value"))
    attn = jax.nn.dot_product_attention(q, k, v, mask=mask, is_causal=cfg.causal,
                                        local_window_size=cfg.attention_window)
    attn = _dense(cfg.hidden_size, ("heads", "kv", "embed"), cfg.dtype, "out", axis=(-2, -1))(attn)
    x = x + attn.astype(jnp.float32)
    x = nn.with_logical_constraint(x, ("batch", "length", "embed"))

    h = _layer_norm(cfg, "layer_norm2")(x)
    h = _dense(cfg.intermediate_size, ("embed", "mlp"), cfg.dtype, "fc1")(h)
    h = nn.with_logical_constraint(ACTIVATIONS[cfg.hidden_act](h), ("batch", "length", "mlp"))
    h = _dense(cfg.hidden_size, ("mlp", "embed"), cfg.dtype, "fc2")(h)
    x = x + h.astype(jnp.float32)
    return nn.with_logical_constraint(x, ("batch", "length", "embed")), None


class CLIPTextModel(nn.Module):
  """CLIP text transformer: token ids -> (last_hidden_state, pooled)."""
  config: CLIPTextConfig

  @nn.compact
  def __call__(self, input_ids: jax.Array,
               attention_mask: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """input_ids: [B, L] int; attention_mask: [B, L] (1 = token, 0 = padding) or None.

    Returns last_hidden_state [B, L, D] and pooled [B, D] (the EOS token's state), float32.
    """
    cfg = self.config
    if input_ids.ndim != 2:
      raise ValueError(f"input_ids has shape {input_ids.shape}; expected [batch, length]")
    length = input_ids.shape[1]
    if length > cfg.max_length:
      raise ValueError(f"input_ids has length {length}; expected at most max_length="
                       f"{cfg.max_length} (the number of learned positions)")
    if attention_mask is not None and attention_mask.shape != input_ids.shape:
      raise ValueError(f"attention_mask has shape {attention_mask.shape}; expected "
                       f"input_ids' shape {input_ids.shape}")

    embed_init = nn.initializers.normal(0.02)
    tokens = nn.Embed(cfg.vocab_size, cfg.hidden_size, name="token_embedding", embedding_init=(
        nn.with_logical_partitioning(embed_init, ("vocab", "embed"))))(input_ids)
    positions = nn.Embed(cfg.max_length, cfg.hidden_size, name="position_embedding",
                         embedding_init=nn.with_logical_partitioning(embed_init, (None, "embed")))(
                             jnp.arange(length))
    x = nn.with_logical_constraint(tokens + positions[None], ("batch", "length", "embed"))

    mask = None if attention_mask is None else attention_mask.astype(bool)[:, None, None, :]
    layers = scan.scan_layers(CLIPEncoderLayer, cfg.num_layers, (nn.broadcast,), cfg.remat_policy)
    x, _ = layers(cfg, name="layers")(x, mask)
    x = _layer_norm(cfg, "final_layer_norm")(x)

    if cfg.eos_token_id == 2:
      # Original checkpoints: EOS (49407) is the largest id, so argmax finds it.
      eos = jnp.argmax(input_ids, axis=-1)
    else:
      eos = jnp.argmax(input_ids == cfg.eos_token_id, axis=-1)  # The first EOS (pad may equal EOS).
    pooled = jnp.take_along_axis(x, eos[:, None, None], axis=1)[:, 0]
    return x, pooled


def convert_params(config: CLIPTextConfig, read: Callable[[str], np.ndarray]) -> dict:
  """transformers `CLIPTextModel` state dict (via `read(name)`) -> our params (float32 numpy)."""
  # transformers < 5 saved CLIPTextModel under "text_model."; v5 saves without the prefix.
  take = conversion.checked(conversion.with_fallback(read, lambda n: "text_model." + n), config)
  d, n, h = config.hidden_size, config.num_heads, config.head_dim

  def linear(prefix, d_in, d_out, kernel_shape, bias_shape):
    w = take(prefix + ".weight", (d_out, d_in)).T.reshape(kernel_shape)
    return {"kernel": w, "bias": take(prefix + ".bias", (d_out,)).reshape(bias_shape)}

  def norm(prefix):
    return {"scale": take(prefix + ".weight", (d,)), "bias": take(prefix + ".bias", (d,))}

  def layer(i):
    p = f"encoder.layers.{i}."
    attn = {k: linear(p + f"self_attn.{s}_proj", d, d, (d, n, h), (n, h))
            for k, s in (("query", "q"), ("key", "k"), ("value", "v"))}
    attn["out"] = linear(p + "self_attn.out_proj", d, d, (n, h, d), (d,))
    return {
        "layer_norm1": norm(p + "layer_norm1"), "layer_norm2": norm(p + "layer_norm2"), **attn,
        "fc1": linear(p + "mlp.fc1", d, config.intermediate_size, (d, -1), (-1,)),
        "fc2": linear(p + "mlp.fc2", config.intermediate_size, d, (-1, d), (d,)),
    }

  return {
      "token_embedding": {"embedding": take("embeddings.token_embedding.weight",
                                            (config.vocab_size, d))},
      "position_embedding": {"embedding": take("embeddings.position_embedding.weight",
                                               (config.max_length, d))},
      "layers": conversion.stack_layers(layer, config.num_layers),
      "final_layer_norm": norm("final_layer_norm"),
  }
