"""PixArt-α: parity with diffusers' PixArtTransformer2DModel, preset parameter counts, errors."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from diffusers import PixArtTransformer2DModel

from jaxgen.bench.reference import randomize, rel_err
from jaxgen.models import pixart
from jaxgen.models.dit_common import count_params

# Width 96 (divisible by 3) so the 1024² model's micro-conditions are covered; a 0.5 position scale
# as in the 256² model; inputs are non-square (6 × 10 latents) to exercise the position rescaling.
TINY = dict(num_attention_heads=2, attention_head_dim=48, in_channels=4, out_channels=8,
            num_layers=2, sample_size=8, patch_size=2, cross_attention_dim=96, caption_channels=40,
            interpolation_scale=0.5, use_additional_conditions=True)


@pytest.fixture(scope="module")
def tiny():
  ref = PixArtTransformer2DModel(**TINY).eval()
  randomize(ref)
  config = pixart.PixArtConfig.from_diffusers(dict(ref.config))
  state = {k: v.numpy() for k, v in ref.state_dict().items()}
  return ref, config, pixart.convert_params(config, state.__getitem__)


def _inputs(seed=0):
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((2, 6, 10, 4)).astype(np.float32)
  t = np.array([5.0, 781.0], np.float32)
  context = rng.standard_normal((2, 7, 40)).astype(np.float32)
  mask = np.array([[1] * 7, [1] * 4 + [0] * 3], bool)
  resolution = np.array([[48.0, 80.0], [48.0, 80.0]], np.float32)
  aspect = np.array([[0.6], [0.6]], np.float32)
  return x, t, context, mask, resolution, aspect


@pytest.fixture(scope="module")
def forward(tiny):
  _, config, _ = tiny
  return jax.jit(pixart.PixArt(config).apply)


def test_parity_with_diffusers(tiny, forward):
  ref, config, params = tiny
  x, t, context, mask, resolution, aspect = _inputs()
  with torch.no_grad():
    want = ref(torch.from_numpy(x).permute(0, 3, 1, 2), torch.from_numpy(context),
               torch.from_numpy(t),
               added_cond_kwargs={"resolution": torch.from_numpy(resolution),
                                  "aspect_ratio": torch.from_numpy(aspect)},
               encoder_attention_mask=torch.from_numpy(mask).float()).sample
  want = want.permute(0, 2, 3, 1).numpy()
  got = forward({"params": params}, x, t, context, mask, resolution, aspect)
  assert got.shape == (2, 6, 10, 8)
  assert rel_err(got, want) <= 1e-4
  # The mask matters: the padded tokens of the second prompt are ignored, not attended to.
  unmasked = forward({"params": params}, x, t, context, None, resolution, aspect)
  assert rel_err(unmasked[1], want[1]) > 1e-3
  assert rel_err(unmasked[0], want[0]) <= 1e-4


def test_bf16_close_to_f32(tiny, forward):
  _, config, params = tiny
  inputs = _inputs()
  f32 = forward({"params": params}, *inputs)
  model = pixart.PixArt(dataclasses.replace(config, dtype=jnp.bfloat16))
  bf16 = jax.jit(model.apply)({"params": params}, *inputs)
  assert bf16.dtype == jnp.bfloat16
  assert rel_err(bf16.astype(jnp.float32), f32) <= 3e-2


def test_init_matches_converted_tree(tiny):
  _, config, params = tiny
  shapes = jax.eval_shape(pixart.PixArt(config).init, jax.random.key(0), *_inputs())["params"]
  assert jax.tree.map(lambda s: s.shape, nn.unbox(shapes)) == jax.tree.map(np.shape, params)


@pytest.mark.parametrize("name", sorted(pixart.PRESETS))
def test_preset_param_count(name):
  config = pixart.PRESETS[name]
  with torch.device("meta"):
    ref = PixArtTransformer2DModel(
        num_attention_heads=config.num_heads, attention_head_dim=config.head_dim,
        in_channels=config.in_channels, out_channels=config.out_channels,
        num_layers=config.num_layers, sample_size=config.sample_size, patch_size=config.patch_size,
        caption_channels=config.caption_channels, cross_attention_dim=config.hidden_size,
        interpolation_scale=config.interpolation_scale,
        use_additional_conditions=config.use_additional_conditions)
  n = config.sample_size
  args = (jnp.zeros((1, n, n, 4)), jnp.zeros((1,)), jnp.zeros((1, 120, config.context_dim)), None,
          jnp.zeros((1, 2)), jnp.zeros((1,)))
  shapes = jax.eval_shape(pixart.PixArt(config).init, jax.random.key(0), *args)
  assert count_params(shapes) == sum(p.numel() for p in ref.parameters())


def test_bad_inputs_raise(tiny):
  _, config, params = tiny
  x, t, context, mask, resolution, aspect = _inputs()
  apply = pixart.PixArt(config).apply
  with pytest.raises(ValueError, match="context has shape"):
    apply({"params": params}, x, t, context[..., :8], mask, resolution, aspect)
  with pytest.raises(ValueError, match="context_mask has shape"):
    apply({"params": params}, x, t, context, mask[:, :3], resolution, aspect)
  with pytest.raises(ValueError, match="micro-conditions"):
    apply({"params": params}, x, t, context, mask)


def test_from_diffusers_defaults():
  assert pixart.PixArtConfig.from_diffusers(
      {"sample_size": 128, "caption_channels": 4096}) == pixart.PRESETS["pixart-alpha-1024"]
  assert pixart.PixArtConfig.from_diffusers(
      {"sample_size": 64, "caption_channels": 4096}) == pixart.PRESETS["pixart-alpha-512"]
