"""Video VAE training task: reconstruction (L1 + MSE) plus a small KL to N(0, I) (Wan §3.1 trains
with L1, KL and perceptual/GAN terms; a toy dataset of flat-coloured glyphs needs only the first two).

The causal chunk loops of `AutoencoderKLWan.encode/decode` run here as Python loops over the
same submodules and params: on XLA:CPU the backward pass of a `lax.scan` over conv chunks is
~10x slower than the unrolled one, and 17 frames are only 5 encoder / 5-9 decoder chunks. The 3D
convolutions run as 2D ones (`fast_conv`) for the same reason.
"""

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from jaxgen.models import vae_common as vc
from jaxgen.models import vae_wan as vw
from jaxgen.pipelines.pixels import to_uint8, to_unit_range
from jaxgen.train import fast_conv
from jaxgen.train.tasks import data

Array = jax.Array


def vae_config(config: ml_collections.ConfigDict, dtype: Any = jnp.float32
               ) -> vw.AutoencoderKLWanConfig:
  """The AutoencoderKLWanConfig of `config.model` (latent statistics reset to mean 0, std 1)."""
  m = config.model
  return vw.AutoencoderKLWanConfig(
      base_dim=m.base_dim, z_dim=m.z_dim, dim_mult=tuple(m.dim_mult),
      num_res_blocks=m.num_res_blocks, attn_scales=tuple(m.attn_scales),
      temporal_downsample=tuple(m.temporal_downsample), latents_mean=(0.0,) * m.z_dim,
      latents_std=(1.0,) * m.z_dim, dtype=dtype)


def encode_unrolled(module: vw.AutoencoderKLWan, x: Array) -> tuple[Array, Array]:
  """`AutoencoderKLWan.encode` with the chunk loop unrolled: x [B, T, H, W, C] -> (mean, logvar)."""
  vw.check_video(module.config, x)
  x = x.astype(module.config.dtype)
  out, cache = module.encoder(x[:, :1], None)
  moments = [out]
  for start in range(1, x.shape[1], vw.ENCODER_CHUNK):
    out, cache = module.encoder(x[:, start:start + vw.ENCODER_CHUNK], cache)
    moments.append(out)
  return vc.split_moments(module.quant_conv(jnp.concatenate(moments, axis=1)))


def decode_unrolled(module: vw.AutoencoderKLWan, z: Array) -> Array:
  """`AutoencoderKLWan.decode(z, clip=False)` with the chunk loop unrolled: z [B, t, h, w, z_dim]
  -> video [B, 1 + (t - 1)·temporal_factor, H, W, C], float32."""
  vw.check_latents(module.config, z)
  z = module.post_quant_conv(z.astype(module.config.dtype))
  out, cache = module.decoder(z[:, :1], None)
  frames = [out]
  for i in range(1, z.shape[1]):
    out, cache = module.decoder(z[:, i:i + 1], cache)
    frames.append(out)
  return jnp.concatenate(frames, axis=1).astype(jnp.float32)


@dataclasses.dataclass(frozen=True)
class VAETask:
  """Loss, init and samples of the video VAE; `config` is the experiment's ConfigDict."""
  config: Any
  dtype: Any = jnp.float32

  @property
  def model(self) -> vw.AutoencoderKLWan:
    return vw.AutoencoderKLWan(vae_config(self.config, self.dtype))

  batch_keys = ("video",)  # what the loader must deliver
  tokenizer = None

  def data_source(self, split: str):
    """Moving Digits videos of `split`."""
    return data.moving_digits(self.config.data, split)

  def init(self, key: Array, batch: dict[str, Array]) -> Any:
    """Boxed (logically partitioned) params for videos like batch['video'] [B, T, H, W, 3]."""
    x = to_unit_range(batch["video"][:1])
    return self.model.init(key, x)["params"]

  def loss(self, params: Any, batch: dict[str, Array], key: Array) -> tuple[Array, dict]:
    """Scalar loss and metrics for a batch: video uint8 [B, T, H, W, 3]."""
    m = self.config.model
    x = to_unit_range(batch["video"])
    k_crop, k_post = jax.random.split(key)
    if m.train_frames and m.train_frames < x.shape[1]:
      # A causal VAE is trained on short clips (Wan §3.1 trains on 5 frames, then longer): each
      # chunk sees at most 2 past frames, so a 9-frame clip already exercises the caches.
      start = jax.random.randint(k_crop, (), 0, x.shape[1] - m.train_frames + 1)
      x = jax.lax.dynamic_slice_in_dim(x, start, m.train_frames, axis=1)
    model = self.model
    with fast_conv.causal_conv_as_2d():
      mean, logvar = model.apply({"params": params}, x, method=encode_unrolled)
      z = vc.posterior_sample(k_post, mean, logvar)
      y = model.apply({"params": params}, z, method=decode_unrolled)
    err = y - x
    # Bright (glyph) pixels are a few percent of a frame; weighting them keeps digits sharp.
    weight = 1.0 + m.glyph_weight * (jnp.max(x, axis=-1, keepdims=True) + 1.0) / 2.0
    l1 = jnp.mean(weight * jnp.abs(err))
    mse = jnp.mean(weight * jnp.square(err))
    kl = jnp.mean(vc.posterior_kl(mean, logvar)) / (x.shape[1] * x.shape[2] * x.shape[3])
    loss = l1 + mse + m.kl_weight * kl
    psnr = -10.0 * jnp.log10(jnp.mean(jnp.square(jnp.clip(y, -1, 1) - x)) / 4.0)
    return loss, {"l1": l1, "mse": mse, "kl": kl, "psnr": psnr,
                  "latent_std": jnp.std(mean)}

  def samples(self, params: Any, batch: dict[str, Array], key: Array) -> Array:
    """Each original above its reconstruction (posterior mean): uint8 [B, 2, T, H, W, 3]."""
    del key
    x = to_unit_range(batch["video"])
    model = self.model
    with fast_conv.causal_conv_as_2d():
      mean, _ = model.apply({"params": params}, x, method=encode_unrolled)
      y = model.apply({"params": params}, mean, method=decode_unrolled)
    return jnp.stack([batch["video"], to_uint8(y)], axis=1)
