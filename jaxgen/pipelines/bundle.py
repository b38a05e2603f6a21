"""A text-to-video model bundle: tokenizer, text encoder, video DiT and video VAE, in one directory.

    DIR/model.json          format, version, and the TextToVideoConfig as JSON
    DIR/params.safetensors  {"text_encoder/...", "transformer/...", "vae/..."} flat params
                            (and "transformer_2/..." for noise-level experts)
    DIR/tokenizer/          a transformers tokenizer (save_pretrained layout)

Written and read by bundle_files (atomically: a bundle is either whole or absent).
"""

import dataclasses
import os
from typing import Any

import numpy as np

from jaxgen.diffusion import parameterization
from jaxgen.diffusion import schedules
from jaxgen.models.clip_text import CLIPTextConfig
from jaxgen.models.vae_wan import AutoencoderKLWanConfig
from jaxgen.models.wan import WanConfig
from jaxgen.pipelines import bundle_files

FORMAT, VERSION = "jaxgen-bundle", 1
META_FILE = "model.json"
# The denoising transformers, from the highest noise levels down (noise-level experts).
TRANSFORMER_NAMES = ("transformer", "transformer_2", "transformer_3")


@dataclasses.dataclass(frozen=True)
class TextToVideoConfig:
  """What a text-to-video bundle holds, and how it samples by default."""
  text_encoder: CLIPTextConfig
  transformer: WanConfig
  vae: AutoencoderKLWanConfig
  schedule: schedules.Schedule = schedules.FlowSchedule()
  prediction_type: str = "flow"
  num_frames: int = 17  # 4n+1 for the causal VAE
  height: int = 32
  width: int = 32
  frame_conditioning: bool = True  # transformer input carries conditions.condition_channels
  sampler: str = "unipc"  # defaults for `jaxgen generate`
  num_steps: int = 30
  guidance_scale: float | tuple[float, ...] = 4.0  # or one per expert (transformer_names)
  description: str = ""
  # Noise-level experts (eDiff-I, Balaji et al. 2022; Wan 2.2's two experts, named as in
  # diffusers): `transformer` denoises levels t >= boundary_ratio (of the schedule's timesteps),
  # where the caption decides the layout and motion, and `transformer_2` the levels below, where
  # the video mostly shows itself. A third expert, as in eDiff-I's tree, splits those levels again:
  # `transformer_2` takes [boundary_ratio_2, boundary_ratio), `transformer_3` the rest. None: one
  # transformer for every level.
  transformer_2: WanConfig | None = None
  boundary_ratio: float | None = None
  transformer_3: WanConfig | None = None
  boundary_ratio_2: float | None = None

  def __post_init__(self):
    parameterization.check_prediction_type(self.prediction_type)
    for dit, ratio, name in ((self.transformer_2, self.boundary_ratio, "boundary_ratio"),
                             (self.transformer_3, self.boundary_ratio_2, "boundary_ratio_2")):
      if (dit is None) != (ratio is None):
        raise ValueError(f"{name}={ratio!r} with {'no' if dit is None else 'an'} expert for the "
                         "levels below it; expected both or neither")
    if self.transformer_3 is not None and self.transformer_2 is None:
      raise ValueError("transformer_3 is given without transformer_2; expected the experts in order")
    bounds = self.boundaries
    if bounds:
      if not all(0.0 < b < 1.0 for b in bounds) or list(bounds) != sorted(set(bounds), reverse=True):
        raise ValueError(f"boundary_ratio, boundary_ratio_2 = {self.boundary_ratio!r}, "
                         f"{self.boundary_ratio_2!r}; expected 1 > boundary_ratio > boundary_ratio_2 > 0")
      if not hasattr(self.schedule, "num_train_timesteps"):
        raise ValueError(f"boundary_ratio needs a schedule with num_train_timesteps, got {self.schedule!r}")
    z = self.vae.z_dim
    expected = 2 * z + 1 if self.frame_conditioning else z
    for name in self.transformer_names:
      dit = getattr(self, name)
      if dit.in_channels != expected or dit.out_channels != z:
        raise ValueError(f"{name} has in/out channels {dit.in_channels}/{dit.out_channels}; expected "
                         f"{expected}/{z} for a VAE with z_dim={z} and "
                         f"frame_conditioning={self.frame_conditioning}")
      if dit.text_dim != self.text_encoder.hidden_size:
        raise ValueError(f"{name}.text_dim={dit.text_dim}; expected the text encoder's "
                         f"hidden_size={self.text_encoder.hidden_size}")

  @property
  def transformer_names(self) -> tuple[str, ...]:
    """The denoising transformers, from the highest levels down: ("transformer",), or with
    experts ("transformer", "transformer_2"[, "transformer_3"])."""
    return tuple(self.level_intervals)

  @property
  def boundaries(self) -> tuple[float, ...]:
    """The levels at which one expert hands over to the next, descending."""
    return tuple(b for b in (self.boundary_ratio, self.boundary_ratio_2) if b is not None)

  @property
  def level_intervals(self) -> dict[str, tuple[float, float]]:
    """The flow levels (lo, hi) each transformer denoises, by name."""
    edges = (1.0, *self.boundaries, 0.0)
    return {name: (lo, hi) for name, hi, lo in zip(TRANSFORMER_NAMES, edges, edges[1:])}

  @property
  def boundary_timesteps(self) -> tuple[float, ...]:
    """The boundaries in the schedule's timesteps: transformer k denoises the timesteps below k
    of them and at or above the rest."""
    return tuple(b * self.schedule.num_train_timesteps for b in self.boundaries)

  def expert_index(self, t):
    """The index in transformer_names of the expert that denoises timestep(s) t (numpy or jax,
    any shape): the number of boundaries above t."""
    return (t[..., None] < np.asarray(self.boundary_timesteps, np.float32)).sum(-1)

  def latent_frames(self, num_frames: int) -> int:
    tf = self.vae.temporal_factor
    if num_frames < 1 or (num_frames - 1) % tf:
      raise ValueError(f"num_frames={num_frames} is not supported; expected 1 + {tf}k frames "
                       f"(e.g. {self.num_frames}) for this model's causal VAE")
    return 1 + (num_frames - 1) // tf

  def latent_shape(self, num_frames: int) -> tuple[int, int, int, int]:
    """(t, h, w, C) of the latents of a num_frames video."""
    f = self.vae.spatial_factor
    return (self.latent_frames(num_frames), self.height // f, self.width // f, self.vae.z_dim)


def save_bundle(path: str | os.PathLike, config: TextToVideoConfig, params: dict, tokenizer: Any, *,
                storage_dtype: str = "float32") -> str:
  """Writes a bundle atomically. params: {"text_encoder", "vae"} and config.transformer_names;
  tokenizer: a transformers tokenizer or a directory holding one."""
  expected = sorted({"text_encoder", "vae", *config.transformer_names})
  if sorted(params) != expected:
    raise ValueError(f"params has keys {sorted(params)}; expected {', '.join(expected)}")
  return bundle_files.save(path, META_FILE, {"format": FORMAT, "version": VERSION}, config, params,
                           tokenizer, storage_dtype)


def load_bundle(path: str | os.PathLike):
  """-> (TextToVideoConfig, params as float32 numpy, tokenizer directory)."""
  config, params = bundle_files.load(path, META_FILE, "text-to-video bundle",
                                     {"format": FORMAT, "version": VERSION})
  return config, params, os.path.join(os.fspath(path), bundle_files.TOKENIZER_DIR)
