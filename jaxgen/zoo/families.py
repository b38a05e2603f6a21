"""Model families: which jaxgen module ports which reference class, and how to trace its params.

A family names a model module (imported lazily: `jaxgen.zoo` loads no model code until asked), its
config and Linen classes, the reference classes it converts, and example inputs for an abstract
`init` (jax.eval_shape: shapes only, nothing allocated).
"""

from collections.abc import Callable
import dataclasses
import importlib
from typing import Any


@dataclasses.dataclass(frozen=True)
class Family:
  """One model module and what the loader needs to know about it."""
  name: str
  module: str  # e.g. "jaxgen.models.dit": <config_class>, <model_class>, convert_params, PRESETS.
  config_class: str
  model_class: str
  source_format: str  # "diffusers" (`from_diffusers`) or "transformers" (`from_transformers`).
  example_inputs: Callable[[Any], tuple]  # config -> positional args of an `init` call.

  @property
  def weights_name(self) -> str:
    """Stem of the reference's safetensors file(s) in a model directory."""
    return "diffusion_pytorch_model" if self.source_format == "diffusers" else "model"

  def import_module(self):
    return importlib.import_module(self.module)

  def config_type(self) -> type:
    return getattr(self.import_module(), self.config_class)

  def config_from_source(self, cfg: dict) -> Any:
    """Our config from the reference's config.json dict."""
    return getattr(self.config_type(), f"from_{self.source_format}")(cfg)

  def model(self, config: Any):
    """The Linen module for `config`."""
    return getattr(self.import_module(), self.model_class)(config)

  def convert_params(self, config: Any, read: Callable) -> dict:
    return self.import_module().convert_params(config, read)

  def presets(self) -> dict:
    return self.import_module().PRESETS

  def abstract_params(self, config: Any) -> dict:
    """The params tree of `config`: ShapeDtypeStruct leaves in their logical-axis boxes."""
    import jax

    model = self.model(config)
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), *self.example_inputs(config)))
    return variables["params"]

  def param_shapes(self, config: Any) -> dict:
    """The params tree of `config` as jax.ShapeDtypeStruct leaves (logical boxes removed)."""
    import flax.linen as nn

    return nn.unbox(self.abstract_params(config))

  def param_shardings(self, config: Any, mesh: Any, rules: Any) -> dict:
    """NamedShardings for `config`'s params from their logical axis names and `rules`
    (pairs of logical name -> mesh axis, as flax.linen.logical_to_mesh_sharding takes)."""
    import flax.linen as nn

    specs = nn.get_partition_spec(self.abstract_params(config))
    return nn.logical_to_mesh_sharding(specs, mesh, rules)

  def num_params(self, config: Any) -> int:
    """Number of parameters of `config`'s model, computed without allocating them."""
    import jax
    import numpy as np

    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(self.param_shapes(config)))


def _zeros(*shape, dtype="float32"):
  import jax.numpy as jnp

  return jnp.zeros(shape, dtype)


def _dit_inputs(c):
  s = c.sample_size
  return _zeros(1, s, s, c.in_channels), _zeros(1), _zeros(1, dtype="int32")


def _pixart_inputs(c):
  s = c.sample_size
  args = (_zeros(1, s, s, c.in_channels), _zeros(1), _zeros(1, 4, c.context_dim),
          _zeros(1, 4, dtype="bool"))
  if c.use_additional_conditions:  # The 1024² model's resolution and aspect-ratio embedders.
    args += (_zeros(1, 2), _zeros(1))
  return args


def _wan_inputs(c):
  p = c.patch_size
  return (_zeros(1, p[0], 2 * p[1], 2 * p[2], c.in_channels), _zeros(1),
          _zeros(1, 4, c.text_dim))


def _vae_kl_inputs(c):
  f = c.downscale_factor
  return (_zeros(1, f, f, c.in_channels),)


def _vae_wan_inputs(c):
  # The first frame and one encoder chunk, so the temporal resamplers (skipped on the first
  # frame) get initialised too.
  from jaxgen.models.vae_wan import ENCODER_CHUNK

  f = c.spatial_factor
  return (_zeros(1, 1 + ENCODER_CHUNK, f, f, c.in_channels),)


def _text_inputs(c):
  return (_zeros(1, 4, dtype="int32"),)


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("dit", "jaxgen.models.dit", "DiTConfig", "DiT", "diffusers", _dit_inputs),
    Family("pixart", "jaxgen.models.pixart", "PixArtConfig", "PixArt", "diffusers",
           _pixart_inputs),
    Family("wan", "jaxgen.models.wan", "WanConfig", "Wan", "diffusers", _wan_inputs),
    Family("vae_kl", "jaxgen.models.vae_kl", "AutoencoderKLConfig", "AutoencoderKL", "diffusers",
           _vae_kl_inputs),
    Family("vae_wan", "jaxgen.models.vae_wan", "AutoencoderKLWanConfig", "AutoencoderKLWan",
           "diffusers", _vae_wan_inputs),
    Family("clip_text", "jaxgen.models.clip_text", "CLIPTextConfig", "CLIPTextModel",
           "transformers", _text_inputs),
    Family("t5", "jaxgen.models.t5", "T5Config", "T5Encoder", "transformers", _text_inputs),
)}

# Reference class name (diffusers `_class_name`, transformers `architectures[0]`) -> family.
SOURCE_CLASSES: dict[str, str] = {
    "DiTTransformer2DModel": "dit",
    "PixArtTransformer2DModel": "pixart",
    "WanTransformer3DModel": "wan",
    "AutoencoderKL": "vae_kl",
    "AutoencoderKLWan": "vae_wan",
    "CLIPTextModel": "clip_text",
    "T5EncoderModel": "t5",
    "UMT5EncoderModel": "t5",
}

# Older diffusers checkpoints (facebook/DiT-*, PixArt-alpha/*) say "Transformer2DModel"; diffusers
# itself picks the class by norm_type, and so do we.
_LEGACY_TRANSFORMER_2D = {"ada_norm_zero": "DiTTransformer2DModel",
                          "ada_norm_single": "PixArtTransformer2DModel"}


def source_class(cfg: dict) -> str | None:
  """The reference class named by a config.json dict, legacy names resolved; None if unnamed."""
  name = cfg.get("_class_name")
  if name is None and cfg.get("architectures"):
    name = cfg["architectures"][0]
  if name == "Transformer2DModel":
    name = _LEGACY_TRANSFORMER_2D.get(cfg.get("norm_type"), name)
  return name


def family_for(cfg: dict, where: str = "config.json") -> Family:
  """The family converting the class that `cfg` names; ValueError if none does."""
  name = source_class(cfg)
  if name is None:
    raise ValueError(f"{where} names no model class; expected a diffusers '_class_name' or a "
                     f"transformers 'architectures' entry, one of {sorted(SOURCE_CLASSES)}")
  if name not in SOURCE_CLASSES:
    extra = (f" with norm_type={cfg.get('norm_type')!r}" if name == "Transformer2DModel" else "")
    raise ValueError(f"{where} names class {name!r}{extra}, which jaxgen cannot convert; "
                     f"supported: {sorted(SOURCE_CLASSES)}")
  return FAMILIES[SOURCE_CLASSES[name]]


def family_of_config(config: Any) -> Family:
  """The family whose config class `config` is an instance of."""
  for family in FAMILIES.values():
    if type(config).__module__ == family.module and type(config).__name__ == family.config_class:
      return family
  raise ValueError(f"config of type {type(config).__name__} belongs to no jaxgen.zoo family; "
                   f"expected one of {[f.config_class for f in FAMILIES.values()]}")


def param_shardings(config: Any, mesh: Any, rules: Any) -> dict:
  """NamedShardings for the params of `config` (any family) on `mesh` under logical `rules`."""
  return family_of_config(config).param_shardings(config, mesh, rules)
