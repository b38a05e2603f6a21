"""Text-to-video models by name or directory: the shipped `moving-digits`, or `random-tiny`."""

import atexit
import functools
import os
import shutil
import tempfile

WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "zoo", "weights")
DEFAULT_MODEL = "moving-digits"
RANDOM_TINY = "random-tiny"


def shipped_models(meta_file: str = "model.json") -> list[str]:
  """Bundles installed with the package (package data under jaxgen/zoo/weights/): text-to-video
  bundles, or with meta_file="stage.json" cascade stages."""
  if not os.path.isdir(WEIGHTS_DIR):
    return []
  return sorted(n for n in os.listdir(WEIGHTS_DIR)
                if os.path.isfile(os.path.join(WEIGHTS_DIR, n, meta_file)))


def load_pipeline(model: str | None = None):
  """-> (TextToVideo, note): `model` is a shipped name, "random-tiny", or a bundle directory.

  Without a model, the shipped default is used; if it is not installed, the randomly
  initialised tiny model is used and `note` says so.
  """
  from jaxgen.pipelines.bundle import load_bundle  # pylint: disable=g-import-not-at-top
  from jaxgen.pipelines.text_to_video import TextToVideo  # pylint: disable=g-import-not-at-top

  note = None
  if model is None:
    model = DEFAULT_MODEL
    if model not in shipped_models():
      model = RANDOM_TINY
      note = (f"the trained {DEFAULT_MODEL!r} model is not installed; this runs the real pipeline on a "
              "randomly initialised tiny model, so the video shows no digits")
  if model == RANDOM_TINY:
    return TextToVideo(*random_tiny()), note
  if model in shipped_models() or os.path.isdir(model):
    return TextToVideo(*load_bundle(bundle_dir(model))), note
  names = shipped_models() + [RANDOM_TINY]
  raise ValueError(f"model={model!r} is not supported; expected one of {', '.join(names)} or a bundle "
                   "directory (model.json, params.safetensors, tokenizer/)")


def bundle_dir(model: str) -> str:
  """The directory of a shipped model's bundle, or `model` itself (a directory)."""
  return os.path.join(WEIGHTS_DIR, model) if model in shipped_models() else model


@functools.lru_cache(maxsize=None)
def random_tiny(seed: int = 0):
  """(config, params, tokenizer_dir) of a tiny randomly initialised model for Moving Digits' shapes."""
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  from jaxgen.data import vocab  # pylint: disable=g-import-not-at-top
  from jaxgen.models.clip_text import CLIPTextConfig, CLIPTextModel  # pylint: disable=g-import-not-at-top
  from jaxgen.models.vae_wan import AutoencoderKLWan, AutoencoderKLWanConfig  # pylint: disable=g-import-not-at-top
  from jaxgen.models.wan import Wan, WanConfig  # pylint: disable=g-import-not-at-top
  from jaxgen.pipelines.bundle import TextToVideoConfig  # pylint: disable=g-import-not-at-top

  tokenizer = vocab.build_tokenizer()
  tokenizer_dir = tempfile.mkdtemp(prefix="jaxgen-random-tiny-tokenizer-")
  atexit.register(shutil.rmtree, tokenizer_dir, ignore_errors=True)  # the pipeline reads it once
  tokenizer.save_pretrained(tokenizer_dir)
  z = 4
  config = TextToVideoConfig(
      text_encoder=CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                  num_layers=1, num_heads=2, max_length=vocab.MAX_LENGTH,
                                  eos_token_id=tokenizer.eos_token_id),
      transformer=WanConfig(in_channels=2 * z + 1, out_channels=z, num_layers=2, num_heads=2, head_dim=16,
                            ffn_dim=64, text_dim=32, freq_dim=32),
      vae=AutoencoderKLWanConfig(base_dim=8, z_dim=z, dim_mult=(1, 2, 2), num_res_blocks=1,
                                 temporal_downsample=(False, True), latents_mean=(0.0,) * z,
                                 latents_std=(1.0,) * z),
      num_steps=10, description="randomly initialised; for tests and smoke runs")
  # The "rbg" generator compiles an init several times faster on CPU than threefry.
  keys = jax.random.split(jax.random.key(seed, impl="rbg"), 3)
  t, h, w, _ = config.latent_shape(config.num_frames)
  ids = jnp.zeros((1, vocab.MAX_LENGTH), jnp.int32)
  # jit: eager init of scanned layers is slow.
  init = lambda module, *args: jax.jit(module.init)(*args)["params"]
  vae = AutoencoderKLWan(config.vae)
  params = nn.meta.unbox({
      "text_encoder": init(CLIPTextModel(config.text_encoder), keys[0], ids),
      "transformer": init(Wan(config.transformer), keys[1], jnp.zeros((1, t, h, w, 2 * z + 1)), jnp.zeros((1,)),
                          jnp.zeros((1, vocab.MAX_LENGTH, 32))),
      "vae": init(vae, keys[2], jnp.zeros((1, config.num_frames, config.height, config.width, 3))),
  })
  # Wan zero-initialises its output layer (DiT practice); random weights there make the
  # untrained smoke model exercise every layer.
  out = params["transformer"]["proj_out"]
  out["kernel"] = 0.02 * jax.random.normal(keys[1], out["kernel"].shape)
  return config, params, tokenizer_dir
