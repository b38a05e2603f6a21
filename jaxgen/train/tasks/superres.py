"""TSR/SSR stage training (Imagen Video §2.1-2.5): a pixel-space SuperResDiT and its own small
CLIP-architecture text encoder, trained jointly with v-prediction on a continuous log-SNR schedule.

The ground truth is Moving Digits rendered at the stage's output size and frame rate
(data.Rendered: the same scenes, drawn larger or sampled more often). The lower stage's input is
made from it: every tf-th frame and sf×sf area averages of
the video (jaxgen.pipelines.upsample.downsample), upsampled back by frame repetition and bilinear
interpolation, then noise-augmented to a per-example level a ~ U[0, max_aug_level]
(jaxgen.diffusion.augment). Captions are dropped with probability caption_dropout, for
classifier-free guidance.
"""

import functools
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxgen.data import vocab
from jaxgen.diffusion import augment as augment_lib
from jaxgen.diffusion import losses
from jaxgen.diffusion import parameterization as param
from jaxgen.diffusion import schedules
from jaxgen.diffusion.samplers import SamplerConfig
from jaxgen.models.clip_text import CLIPTextConfig, CLIPTextModel
from jaxgen.models.superres import SuperResConfig, SuperResDiT, input_channels
from jaxgen.models.wan import WanConfig
from jaxgen.pipelines import cascade
from jaxgen.pipelines.pixels import to_uint8, to_unit_range
from jaxgen.pipelines import upsample
from jaxgen.train.tasks import data

Array = jax.Array


def stage_config(config: ml_collections.ConfigDict, tokenizer: Any,
                 dtype: Any = jnp.float32) -> cascade.StageConfig:
  """The StageConfig (network, text encoder, schedule, sampling defaults) of an experiment."""
  t, d, s, st = config.text, config.dit, config.sampling, config.stage
  text = CLIPTextConfig(
      vocab_size=len(tokenizer), hidden_size=t.width, intermediate_size=t.mlp_dim,
      num_layers=t.num_layers, num_heads=t.num_heads, max_length=vocab.MAX_LENGTH,
      hidden_act="gelu", eos_token_id=tokenizer.eos_token_id, dtype=dtype)
  dit = WanConfig(
      patch_size=tuple(d.patch_size), in_channels=input_channels(st.temporal_factor),
      out_channels=3, num_layers=d.num_layers, num_heads=d.num_heads, head_dim=d.head_dim,
      ffn_dim=d.ffn_dim, text_dim=t.width, freq_dim=d.freq_dim,
      rope_max_seq_len=d.rope_max_seq_len, rope_theta=d.get("rope_theta", 10000.0),
      pos_embed=d.get("pos_embed", None), attention=d.attention, dtype=dtype,
      remat_policy=d.remat_policy)
  model = SuperResConfig(dit, temporal_factor=st.temporal_factor,
                         spatial_factor=st.spatial_factor)
  return cascade.StageConfig(
      model, text, schedule=schedules.LogSNRSchedule(kind=config.schedule),
      prediction_type=config.prediction_type, sampler=SamplerConfig(s.sampler, s.num_steps),
      guidance_scale=s.guidance_scale, aug_level=s.aug_level,
      residual_scale=config.residual_scale, description=config.description)


class SuperResTask:
  """Loss, init and samples of a TSR or SSR stage; `config` is the experiment's ConfigDict."""

  batch_keys = ("video",)

  def __init__(self, config: ml_collections.ConfigDict, dtype: Any = jnp.float32):
    if not 0.0 <= config.max_aug_level <= 1.0:
      raise ValueError(f"config.max_aug_level={config.max_aug_level!r}; expected a number in "
                       "[0, 1]")
    self.config, self.dtype = config, dtype
    self.tokenizer = vocab.build_tokenizer()
    empty = self.tokenizer([""], padding="max_length", max_length=vocab.MAX_LENGTH,
                           return_tensors="np")
    self.empty_ids = empty["input_ids"][0].astype(np.int32)
    self.empty_mask = empty["attention_mask"][0].astype(np.int32)

  @functools.cached_property
  def stage(self) -> cascade.StageConfig:
    return stage_config(self.config, self.tokenizer, self.dtype)

  def data_source(self, split: str) -> data.Rendered:
    """Moving Digits videos and captions of `split`, rendered at the stage's output size and
    frame rate (config.data.scale, rate), in clips of config.data.clip_frames frames."""
    return data.rendered(self.config.data, split)

  # ---- data ------------------------------------------------------------------------------------
  def high_and_low(self, video: Array) -> tuple[Array, Array]:
    """uint8 [B, T, H, W, 3] -> (target [B, T', H, W, 3], lower stage [B, T'/tf, H/sf, W/sf, 3]),
    both in [-1, 1]; T' is T rounded down to a multiple of tf."""
    m = self.stage.model
    x = to_unit_range(video)
    x = x[:, :x.shape[1] // m.temporal_factor * m.temporal_factor]
    return x, upsample.downsample(x, m.temporal_factor, m.spatial_factor)

  def naive(self, low: Array) -> Array:
    """The baseline: frame repetition and bilinear upsampling of the lower stage."""
    m = self.stage.model
    return upsample.upsample(low, m.temporal_factor, m.spatial_factor)

  # ---- model -----------------------------------------------------------------------------------
  def init(self, key: Array, batch: dict[str, Array]) -> dict:
    """Boxed params {'text_encoder', 'transformer'} for batches like `batch`."""
    k_text, k_dit = jax.random.split(key)
    cfg = self.stage
    ids = batch["input_ids"][:1]
    x, _ = self.high_and_low(batch["video"][:1])
    text = CLIPTextModel(cfg.text_encoder).init(k_text, ids)["params"]
    context = jnp.zeros((1, ids.shape[1], cfg.text_encoder.hidden_size))
    dit = SuperResDiT(cfg.model).init(k_dit, x, jnp.zeros((1,)), x, jnp.zeros((1,)),
                                      context)["params"]
    return {"text_encoder": text, "transformer": dit}

  def loss(self, params: dict, batch: dict[str, Array], key: Array) -> tuple[Array, dict]:
    """v-prediction loss of the high-resolution video's residual over naive upsampling (times
    residual_scale), given the augmented lower stage (cascade.run_stage adds it back)."""
    cfg, stage = self.config, self.stage
    k_drop, k_level, k_aug, k_t, k_noise = jax.random.split(key, 5)
    high, low = self.high_and_low(batch["video"])
    up = self.naive(low)
    x0 = (high - up) * stage.residual_scale
    b = x0.shape[0]
    drop = jax.random.bernoulli(k_drop, cfg.caption_dropout, (b, 1))
    ids = jnp.where(drop, self.empty_ids, batch["input_ids"])
    mask = jnp.where(drop, self.empty_mask, batch["attention_mask"])
    context = CLIPTextModel(stage.text_encoder).apply(
        {"params": params["text_encoder"]}, ids, mask)[0]
    levels = augment_lib.sample_levels(k_level, b, cfg.max_aug_level)
    low_aug = augment_lib.augment(k_aug, up, levels, stage.schedule)
    timestep, alpha, sigma = losses.sample_noise_level(stage.schedule, k_t, b)
    eps = jax.random.normal(k_noise, x0.shape)
    x_t = param.q_sample(x0, eps, alpha, sigma)
    prediction = SuperResDiT(stage.model).apply(
        {"params": params["transformer"]}, x_t, timestep, low_aug, levels, context,
        mask.astype(bool))
    per_example = losses.diffusion_loss(prediction, x0, eps, alpha, sigma, stage.prediction_type,
                                        weighting=cfg.weighting)
    return jnp.mean(per_example), {"aug_level": jnp.mean(levels)}

  # ---- samples ---------------------------------------------------------------------------------
  def samples(self, params: dict, batch: dict[str, Array], key: Array) -> Array:
    """Ground truth, naive upsampling and the stage's samples: uint8 [3, B, T, H, W, 3]."""
    x0, low = self.high_and_low(batch["video"])
    ids, mask = batch["input_ids"], batch["attention_mask"]
    empty_ids = jnp.broadcast_to(self.empty_ids, ids.shape)
    empty_mask = jnp.broadcast_to(self.empty_mask, mask.shape)
    stage = self.stage
    fake = cascade.run_stage(stage, stage.guidance_scale != 1.0, params, low, ids, mask,
                             empty_ids, empty_mask, key)
    return jnp.stack([to_uint8(x0), to_uint8(self.naive(low)), to_uint8(fake)])


def export(config: ml_collections.ConfigDict, params: dict, path: str,
           storage_dtype: str = "float16") -> str:
  """Writes trained (EMA) params as a stage bundle for jaxgen.pipelines.cascade."""
  task = SuperResTask(config)  # float32 compute: the bundle's default
  return cascade.save_stage(path, task.stage, params, task.tokenizer,
                            storage_dtype=storage_dtype)
