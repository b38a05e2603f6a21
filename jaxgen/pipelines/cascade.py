"""Imagen Video's cascade (Ho et al. 2022, §2.1): a base text-to-video model, then any number of
TSR/SSR stages in any order, each sampled as one jit-compiled program.

    cascade = load_cascade("moving-digits-cascade")[0]
    videos = cascade("a red 7 moving right")  # uint8 [1, T·∏tf, H·∏sf, W·∏sf, 3]

A stage bundle is a directory: stage.json (format, version, StageConfig), params.safetensors
({"text_encoder/...", "transformer/..."}) and tokenizer/. Each stage has its own small text
encoder, trained with it (Imagen Video shares one frozen T5 instead; our base encoder is trained
jointly with the base model, so the stages do not depend on its weights).
"""

import dataclasses
import functools
import os
import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.diffusion import augment as augment_lib
from jaxgen.diffusion import parameterization
from jaxgen.diffusion import schedules
from jaxgen.diffusion.samplers import SamplerConfig, sample
from jaxgen.models.clip_text import CLIPTextConfig, CLIPTextModel
from jaxgen.models.superres import SuperResConfig, SuperResDiT, input_channels
from jaxgen.pipelines import bundle_files
from jaxgen.pipelines import upsample as upsample_lib
from jaxgen.pipelines.pixels import to_uint8, to_unit_range

FORMAT, VERSION = "jaxgen-stage", 2  # 2: stages sample the residual over naive upsampling
META_FILE = "stage.json"
CASCADES = {  # name -> (base model, stage bundles), all shipped under jaxgen/zoo/weights/
    "moving-digits-cascade": ("moving-digits", ("moving-digits-tsr", "moving-digits-ssr")),
}
RANDOM_TINY_CASCADE = "random-tiny-cascade"


@dataclasses.dataclass(frozen=True)
class StageConfig:
  """A TSR/SSR stage: network, text encoder, noise process and sampling settings (jit-static)."""
  model: SuperResConfig
  text_encoder: CLIPTextConfig
  schedule: schedules.Schedule = schedules.LogSNRSchedule()
  prediction_type: str = "v_prediction"  # Imagen Video §2.4
  sampler: SamplerConfig = SamplerConfig("dpmpp_2m", 20)
  guidance_scale: float = 1.0  # 1 samples without classifier-free guidance
  aug_level: float = 0.1  # fixed noise-augmentation level of the input at sampling, in [0, 1]
  # The residual is diffused times this, to about unit variance (as latent diffusion scales its
  # latents): a residual of std 0.05 would sit ~6 nats of log-SNR below the schedule's design,
  # so most noise levels would hide it entirely.
  residual_scale: float = 1.0
  input_shape: tuple[int, int, int] | None = None  # (T, H, W) it was trained for; None: any
  description: str = ""

  def __post_init__(self):
    parameterization.check_prediction_type(self.prediction_type)
    if not 0.0 <= self.aug_level <= 1.0:
      raise ValueError(f"aug_level={self.aug_level!r}; expected a number in [0, 1]")
    if not self.residual_scale > 0:
      raise ValueError(f"residual_scale={self.residual_scale!r}; expected a positive number")
    if self.model.dit.text_dim != self.text_encoder.hidden_size:
      raise ValueError(f"model.dit.text_dim={self.model.dit.text_dim}; expected the text "
                       f"encoder's hidden_size={self.text_encoder.hidden_size}")
    if isinstance(self.input_shape, list):
      object.__setattr__(self, "input_shape", tuple(self.input_shape))

  def check_input(self, name: str, frames: int, height: int, width: int) -> tuple[int, int, int]:
    """The output (T, H, W) for an input (frames, height, width), or a ValueError saying why not."""
    if self.input_shape is not None and (frames, height, width) != self.input_shape:
      raise ValueError(f"{name} ({self.model.kind}) was trained on inputs of frames, height, width "
                       f"{list(self.input_shape)}; it gets {[frames, height, width]}")
    return self.model.check_input(name, frames, height, width)


@dataclasses.dataclass(frozen=True)
class CascadeConfig:
  """The stages after the base, in order, and the base's sampling settings (None: its own)."""
  stages: tuple[StageConfig, ...]
  num_frames: int | None = None  # base frames
  base_sampler: str | None = None
  base_num_steps: int | None = None
  base_guidance_scale: float | None = None

  def __post_init__(self):
    object.__setattr__(self, "stages", tuple(self.stages))

  def output_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int]:
    """(T, H, W) after every stage: the base's times the product of the factors."""
    shape = (frames, height, width)
    for i, stage in enumerate(self.stages):
      shape = stage.check_input(f"stage {i}", *shape)
    return shape


class Cascade:
  """base -> stages: `cascade(prompts)` -> uint8 videos [N, T, H, W, 3] at the final size."""

  def __init__(self, config: CascadeConfig, base: Any, stage_params: Sequence[dict]):
    """base: a TextToVideo pipeline (jaxgen.pipelines.load); stage_params: one per stage."""
    if len(stage_params) != len(config.stages):
      raise ValueError(f"stage_params has {len(stage_params)} entries; expected one per stage, "
                       f"{len(config.stages)}")
    self.config, self.base = config, base
    self.stage_params = [jax.tree.map(jnp.asarray, p) for p in stage_params]
    self.tokenizer = base.tokenizer
    self.times: dict[str, float] = {}  # seconds per stage of the last call (compile included)
    self.output_shape(config.num_frames)  # fail on a misfit before anything compiles

  def output_shape(self, num_frames: int | None = None) -> tuple[int, int, int]:
    """(T, H, W) of the cascade's output for a base of num_frames frames."""
    b = self.base.config
    frames = num_frames or self.config.num_frames or b.num_frames
    return self.config.output_shape(frames, b.height, b.width)

  def __call__(self, prompts: str | Sequence[str], *, negative_prompt: str = "",
               num_frames: int | None = None, seed: int = 0, num_videos: int = 1,
               return_stages: bool = False) -> np.ndarray | list[np.ndarray]:
    """num_videos videos per prompt: uint8 [len(prompts) · num_videos, T, H, W, 3].

    return_stages: return every stage's output instead, the base's first, as a list.
    """
    cfg = self.config
    num_frames = num_frames or cfg.num_frames
    self.output_shape(num_frames)
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    start = time.perf_counter()
    video = self.base(prompts, negative_prompt=negative_prompt, num_frames=num_frames,
                      num_steps=cfg.base_num_steps, sampler=cfg.base_sampler,
                      guidance_scale=cfg.base_guidance_scale, seed=seed, num_videos=num_videos)
    self.times = {"base": time.perf_counter() - start}
    x = to_unit_range(video)
    outputs = [x]
    prompts = [p for p in prompts for _ in range(num_videos)]
    ids, mask = self.tokenizer(prompts)
    neg_ids, neg_mask = self.tokenizer([negative_prompt] * len(prompts))
    key = jax.random.fold_in(jax.random.key(seed), 2)
    for i, (stage, params) in enumerate(zip(cfg.stages, self.stage_params)):
      start = time.perf_counter()
      x = run_stage(stage, stage.guidance_scale != 1.0, params, x, ids, mask, neg_ids, neg_mask,
                    jax.random.fold_in(key, i))
      x.block_until_ready()
      self.times[f"stage {i} ({stage.model.kind})"] = time.perf_counter() - start
      outputs.append(x)
    return [np.asarray(to_uint8(y)) for y in outputs] if return_stages else np.asarray(to_uint8(x))


@functools.partial(jax.jit, static_argnums=(0, 1))
def run_stage(stage: StageConfig, guided: bool, params: dict, low: jax.Array, ids: jax.Array,
              mask: jax.Array, neg_ids: jax.Array, neg_mask: jax.Array, key: jax.Array
              ) -> jax.Array:
  """One stage's whole sampling loop: low [B, T, H, W, C] in [-1, 1] -> [B, T·tf, H·sf, W·sf, C]."""
  m = stage.model
  up = upsample_lib.upsample(low, m.temporal_factor, m.spatial_factor)
  k_aug, k_noise, k_sample = jax.random.split(key, 3)
  level = jnp.full(up.shape[:1], stage.aug_level, jnp.float32)
  low_aug = augment_lib.augment(k_aug, up, level, stage.schedule)
  text = CLIPTextModel(stage.text_encoder)
  encode = lambda i, k: text.apply({"params": params["text_encoder"]}, i, k)[0]
  cond = {"context": encode(ids, mask), "mask": mask.astype(bool), "low": low_aug, "aug": level}
  negative = {"context": encode(neg_ids, neg_mask), "mask": neg_mask.astype(bool), "low": low_aug,
              "aug": level}
  net = SuperResDiT(m)

  def denoiser(x, t, c):
    return net.apply({"params": params["transformer"]}, x, t, c["low"], c["aug"], c["context"],
                     c["mask"])

  residual = sample(denoiser, jax.random.normal(k_noise, up.shape), cond, config=stage.sampler,
                    schedule=stage.schedule, prediction_type=stage.prediction_type, key=k_sample,
                    guidance_scale=stage.guidance_scale,
                    negative_cond=negative if guided else None)
  return jnp.clip(up + residual / stage.residual_scale, -1.0, 1.0)


# ---------------------------------------------------------------- stage bundles


def save_stage(path: str | os.PathLike, config: StageConfig, params: dict, tokenizer: Any, *,
               storage_dtype: str = "float32") -> str:
  """Writes a stage bundle atomically. params: {"text_encoder", "transformer"}; tokenizer: a
  transformers tokenizer or a directory holding one; storage_dtype: float32 or float16."""
  if set(params) != {"text_encoder", "transformer"}:
    raise ValueError(f"params has keys {sorted(params)}; expected text_encoder, transformer")
  return bundle_files.save(path, META_FILE, {"format": FORMAT, "version": VERSION}, config, params,
                           tokenizer, storage_dtype)


def load_stage(path: str | os.PathLike) -> tuple[StageConfig, dict]:
  """-> (StageConfig, params as float32 numpy)."""
  return bundle_files.load(path, META_FILE, "stage bundle", {"format": FORMAT, "version": VERSION})


# ---------------------------------------------------------------- named cascades


def cascade_names() -> list[str]:
  return sorted(CASCADES) + [RANDOM_TINY_CASCADE]


def shipped_cascades() -> list[str]:
  """The named cascades whose base model and stages are all installed with the package."""
  from jaxgen.pipelines import load  # pylint: disable=g-import-not-at-top

  installed = set(load.shipped_models()) | set(load.shipped_models(META_FILE))
  return sorted(n for n, (base, stages) in CASCADES.items() if {base, *stages} <= installed)


def stage_dir(model: str) -> str | None:
  """The stage bundle `model` names (a shipped stage, e.g. moving-digits-tsr, or a directory
  holding stage.json), or None when it names none."""
  from jaxgen.pipelines import load  # pylint: disable=g-import-not-at-top

  for path in (os.path.join(load.WEIGHTS_DIR, model), model):
    if os.path.isfile(os.path.join(path, META_FILE)):
      return path
  return None


def load_cascade(name: str) -> tuple[Cascade, str | None]:
  """-> (Cascade, note): a named cascade of shipped bundles, or random-tiny-cascade.

  When a named cascade's trained weights are not installed, the randomly initialised tiny cascade
  runs instead and `note` says so.
  """
  from jaxgen.pipelines import load  # pylint: disable=g-import-not-at-top
  from jaxgen.pipelines.text_to_video import TextToVideo  # pylint: disable=g-import-not-at-top

  if name not in cascade_names():
    raise ValueError(f"model={name!r} is not a cascade; expected one of {', '.join(cascade_names())}")
  note = None
  if name in CASCADES:
    base_name, stage_names = CASCADES[name]
    if name in shipped_cascades():
      base, _ = load.load_pipeline(base_name)
      stages = [load_stage(os.path.join(load.WEIGHTS_DIR, s)) for s in stage_names]
      config = CascadeConfig(tuple(s for s, _ in stages))
      return Cascade(config, base, [p for _, p in stages]), None
    note = (f"the trained {name!r} stages are not installed; this runs the real cascade on "
            "randomly initialised tiny models, so the video shows no digits")
  base = TextToVideo(*load.random_tiny())
  stages = [random_tiny_stage(2, 1, seed=1), random_tiny_stage(1, 2, seed=2)]
  config = CascadeConfig(tuple(s for s, _ in stages), base_num_steps=4)
  return Cascade(config, base, [p for _, p in stages]), note


@functools.lru_cache(maxsize=None)
def random_tiny_stage(temporal_factor: int, spatial_factor: int, seed: int = 0, *,
                      num_steps: int = 4, attention: str = "factorized"
                      ) -> tuple[StageConfig, dict]:
  """(config, params) of a tiny randomly initialised pixel-space stage, for tests and smoke runs."""
  import flax.linen as nn  # pylint: disable=g-import-not-at-top

  from jaxgen.data import vocab  # pylint: disable=g-import-not-at-top
  from jaxgen.models.wan import WanConfig  # pylint: disable=g-import-not-at-top

  tokenizer = vocab.build_tokenizer()
  text = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                        num_layers=1, num_heads=2, max_length=vocab.MAX_LENGTH,
                        eos_token_id=tokenizer.eos_token_id)
  patch = (1, 2 * spatial_factor, 2 * spatial_factor)  # tokens per frame as at the input size
  model = SuperResConfig(
      WanConfig(patch_size=patch, in_channels=input_channels(temporal_factor), out_channels=3,
                num_layers=1, num_heads=2, head_dim=16, ffn_dim=64, text_dim=32, freq_dim=32,
                rope_max_seq_len=64, attention=attention),
      temporal_factor=temporal_factor, spatial_factor=spatial_factor)
  config = StageConfig(model, text, sampler=SamplerConfig("dpmpp_2m", num_steps),
                       description="randomly initialised; for tests and smoke runs")
  keys = jax.random.split(jax.random.key(seed, impl="rbg"), 3)
  ids = jnp.zeros((1, vocab.MAX_LENGTH), jnp.int32)
  x = jnp.zeros((1,) + patch + (3,))
  init = lambda module, *args: jax.jit(module.init)(*args)["params"]
  params = nn.meta.unbox({
      "text_encoder": init(CLIPTextModel(text), keys[0], ids),
      "transformer": init(SuperResDiT(model), keys[1], x, jnp.zeros((1,)), x, jnp.zeros((1,)),
                          jnp.zeros((1, vocab.MAX_LENGTH, 32))),
  })
  # The output layer starts at zero (DiT practice); random weights there make an untrained stage's
  # output depend on every layer, its input and its augmentation level.
  out = params["transformer"]["proj_out"]
  out["kernel"] = 0.02 * jax.random.normal(keys[2], out["kernel"].shape)
  return config, params
