"""The model zoo's named presets: family, config, parameter count, expected source layout.

Adding a model is one `register(...)` line; its config defaults to the family module's
`PRESETS[name]`, and `weights` may point at a native checkpoint (e.g. one shipped in
jaxgen/zoo/weights/) so that `Preset.load()` works without any conversion.
"""

from collections.abc import Callable
import dataclasses
import functools
import os
from typing import Any

from jaxgen.zoo import families

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass(frozen=True)
class Preset:
  """A named model: its family, config, and where its weights come from."""
  name: str
  family: str  # A key of jaxgen.zoo.families.FAMILIES.
  source: str  # The layout `jaxgen convert` expects, e.g. "diffusers: transformer/ of X".
  description: str
  config_factory: Callable[[], Any] | None = None  # None: the family module's PRESETS[name].
  weights: str | None = None  # A native checkpoint (relative paths: inside the jaxgen package).

  @property
  def config(self) -> Any:
    if self.config_factory is not None:
      return self.config_factory()
    presets = families.FAMILIES[self.family].presets()
    if self.name not in presets:
      raise ValueError(f"preset {self.name!r}: {families.FAMILIES[self.family].module}.PRESETS "
                       f"has no such entry (it has {sorted(presets)})")
    return presets[self.name]

  def num_params(self) -> int:
    """Parameter count from an abstract init (nothing allocated)."""
    return _num_params(self.family, self.config)

  def weights_path(self) -> str | None:
    if self.weights is None:
      return None
    return self.weights if os.path.isabs(self.weights) else os.path.join(_PACKAGE_DIR, self.weights)

  def load(self, *, dtype: Any = None, shardings: Any = None) -> tuple[Any, dict]:
    """(config, params) from the preset's native weights."""
    path = self.weights_path()
    if path is None:
      raise ValueError(f"preset {self.name!r} ships no weights; convert a local copy of "
                       f"{self.source!r} with `jaxgen convert SRC DST` and load DST with "
                       "jaxgen.zoo.restore")
    from jaxgen.zoo import native

    return native.restore(path, dtype=dtype, shardings=shardings)


@functools.lru_cache(maxsize=None)
def _num_params(family: str, config: Any) -> int:
  return families.FAMILIES[family].num_params(config)


REGISTRY: dict[str, Preset] = {}


def register(name: str, family: str, source: str, description: str, *,
             config: Callable[[], Any] | None = None, weights: str | None = None) -> Preset:
  """Adds a preset to the zoo (one line per model); returns it."""
  if name in REGISTRY:
    raise ValueError(f"preset name={name!r} is already registered")
  if family not in families.FAMILIES:
    raise ValueError(f"family={family!r} for preset {name!r}; expected one of "
                     f"{sorted(families.FAMILIES)}")
  preset = Preset(name, family, source, description, config, weights)
  REGISTRY[name] = preset
  return preset


def get(name: str) -> Preset:
  """The preset called `name`; ValueError listing the known names otherwise."""
  if name not in REGISTRY:
    raise ValueError(f"unknown model preset {name!r}; expected one of {sorted(REGISTRY)}")
  return REGISTRY[name]


register("dit-xl-2-256", "dit", "diffusers: transformer/ of facebook/DiT-XL-2-256",
         "DiT-XL/2, class-conditional ImageNet 256² (Peebles & Xie 2023)")
register("dit-b-2-256", "dit", "none: architecture only (no released diffusers weights)",
         "DiT-B/2 at 256² (32² latents), for benchmarks and training")
register("dit-s-2-256", "dit", "none: architecture only (no released diffusers weights)",
         "DiT-S/2 at 256² (32² latents), for benchmarks and training")
register("pixart-alpha-256", "pixart",
         "diffusers: transformer/ of PixArt-alpha/PixArt-XL-2-256x256",
         "PixArt-α XL/2 text-to-image at 256², T5 text (Chen et al. 2023)")
register("pixart-alpha-512", "pixart",
         "diffusers: transformer/ of PixArt-alpha/PixArt-XL-2-512x512",
         "PixArt-α XL/2 text-to-image at 512², T5 text (Chen et al. 2023)")
register("pixart-alpha-1024", "pixart",
         "diffusers: transformer/ of PixArt-alpha/PixArt-XL-2-1024-MS",
         "PixArt-α XL/2 text-to-image at 1024², multi-aspect micro-conditions (Chen et al. 2023)")
register("wan2.1-t2v-1.3b", "wan", "diffusers: transformer/ of Wan-AI/Wan2.1-T2V-1.3B-Diffusers",
         "Wan 2.1 text-to-video DiT, 1.3B, umT5 text (Wan Team 2025)")
register("wan2.1-t2v-14b", "wan", "diffusers: transformer/ of Wan-AI/Wan2.1-T2V-14B-Diffusers",
         "Wan 2.1 text-to-video DiT, 14B, umT5 text (Wan Team 2025)")
register("sd-vae-ft-ema", "vae_kl", "diffusers: stabilityai/sd-vae-ft-ema (or vae/ of SD 1.x)",
         "Stable Diffusion 1.x KL autoencoder, f8, 4 latent channels")
register("wan2.1-vae", "vae_wan", "diffusers: vae/ of Wan-AI/Wan2.1-T2V-1.3B-Diffusers",
         "Wan 2.1 causal 3D video VAE: 4x time, 8x8 space, 16 latent channels")
register("clip-vit-l-14-text", "clip_text",
         "transformers: text_encoder/ of an SD 1.x repo (openai/clip-vit-large-patch14)",
         "CLIP ViT-L/14 text encoder, 77 tokens (Radford et al. 2021)")
register("t5-v1_1-xxl", "t5",
         "transformers: text_encoder/ of PixArt-alpha/PixArt-XL-2-512x512 (google/t5-v1_1-xxl)",
         "T5 v1.1 XXL encoder, PixArt-α's text encoder (Raffel et al. 2020)")
register("umt5-xxl", "t5",
         "transformers: text_encoder/ of Wan-AI/Wan2.1-T2V-1.3B-Diffusers (google/umt5-xxl)",
         "umT5 XXL encoder, Wan 2.1's multilingual text encoder (Chung et al. 2023)")
