"""AutoencoderKL (SD's VAE): float32 parity with diffusers on a tiny random model, conversion,
presets and input errors."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL as TorchAutoencoderKL

from jaxgen.bench.reference import randomize, rel_err
from jaxgen.models import vae_common, vae_kl

TINY = dict(block_out_channels=(32, 64), layers_per_block=1, norm_num_groups=16, latent_channels=4,
            down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
            shift_factor=0.1)
SD_VAE_FT_EMA = dict(  # config.json of stabilityai/sd-vae-ft-ema
    act_fn="silu", block_out_channels=[128, 256, 512, 512],
    down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
    in_channels=3, latent_channels=4, layers_per_block=2, norm_num_groups=32, out_channels=3,
    sample_size=256)


@pytest.fixture(scope="module")
def tiny():
  """(reference, config, params, model) for the tiny config, converted through `read`."""
  ref = TorchAutoencoderKL(**TINY).eval()
  randomize(ref)
  state = {k: v.numpy() for k, v in ref.state_dict().items()}
  config = vae_kl.AutoencoderKLConfig.from_diffusers(dict(ref.config))
  params = vae_kl.convert_params(config, lambda name: state[name])
  return ref, config, params, vae_kl.AutoencoderKL(config)


def test_converted_names_match_reference(tiny):
  ref, config, _, _ = tiny
  assert sorted(vae_kl.source_names(config)) == sorted(ref.state_dict())


def test_encode_matches_diffusers(tiny):
  ref, _, params, model = tiny
  x = np.random.RandomState(0).uniform(-1, 1, (2, 16, 24, 3)).astype(np.float32)
  mean, logvar = jax.jit(lambda p, x: model.apply({"params": p}, x, method=model.encode))(params, x)
  with torch.no_grad():
    post = ref.encode(torch.from_numpy(x).permute(0, 3, 1, 2)).latent_dist
  ref_mean = post.mean.permute(0, 2, 3, 1).numpy()
  ref_logvar = post.logvar.permute(0, 2, 3, 1).numpy()
  assert mean.shape == logvar.shape == (2, 8, 12, 4)
  assert np.mean(np.abs(ref_logvar) < 20) > 0.9  # the comparison is not of clipped values
  assert rel_err(mean, ref_mean) <= 1e-4
  assert rel_err(logvar, ref_logvar) <= 1e-4


def test_decode_matches_diffusers(tiny):
  ref, _, params, model = tiny
  z = np.random.RandomState(1).randn(2, 8, 12, 4).astype(np.float32)
  out = jax.jit(lambda p, z: model.apply({"params": p}, z, method=model.decode))(params, z)
  with torch.no_grad():
    expected = ref.decode(torch.from_numpy(z).permute(0, 3, 1, 2)).sample
  expected = expected.permute(0, 2, 3, 1).numpy()
  assert out.shape == (2, 16, 24, 3) and out.dtype == jnp.float32
  assert rel_err(out, expected) <= 1e-4


def test_posterior_sampling_uses_the_key():
  mean = jnp.arange(8.0).reshape(1, 2, 2, 2)
  logvar = jnp.full_like(mean, np.log(0.25))
  a = vae_common.posterior_sample(jax.random.key(0), mean, logvar)
  b = vae_common.posterior_sample(jax.random.key(0), mean, logvar)
  c = vae_common.posterior_sample(jax.random.key(1), mean, logvar)
  np.testing.assert_array_equal(a, b)
  assert not np.allclose(a, c)
  eps = jax.random.normal(jax.random.key(0), mean.shape)
  np.testing.assert_allclose(a, mean + 0.5 * eps, rtol=1e-6)
  zeros = jnp.zeros_like(mean)
  np.testing.assert_allclose(vae_common.posterior_kl(zeros, zeros), [0.0])


def test_normalize_follows_scaling_and_shift(tiny):
  _, config, _, model = tiny
  z = jnp.linspace(-2.0, 2.0, 16).reshape(1, 2, 2, 4)
  np.testing.assert_allclose(model.normalize(z), (z - 0.1) * config.scaling_factor, rtol=1e-6)
  np.testing.assert_allclose(model.denormalize(model.normalize(z)), z, rtol=1e-5, atol=1e-6)


def test_preset_matches_reference_config_and_param_count():
  with torch.device("meta"):
    ref = TorchAutoencoderKL(**SD_VAE_FT_EMA)
  config = vae_kl.AutoencoderKLConfig.from_diffusers(dict(ref.config))
  assert config == vae_kl.PRESETS["sd-vae-ft-ema"]
  assert config.downscale_factor == 8
  assert vae_kl.num_params(config) == sum(p.numel() for p in ref.parameters()) == 83_653_863


def test_params_carry_logical_axis_names(tiny):
  _, config, _, model = tiny
  variables = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 2, 2, 3)))
  specs = nn.get_partition_spec(variables)["params"]
  assert tuple(specs["encoder"]["conv_in"]["kernel"]) == (None, None, "conv_in", "conv_out")
  assert tuple(specs["quant_conv"]["kernel"]) == ("conv_in", "conv_out")
  assert tuple(specs["decoder"]["conv_norm_out"]["scale"]) == ("norm",)
  leaves = jax.tree.leaves(variables["params"], is_leaf=lambda x: isinstance(x, nn.Partitioned))
  assert all(isinstance(leaf, nn.Partitioned) for leaf in leaves)


def test_bad_inputs_raise_before_compiling(tiny):
  _, config, params, model = tiny
  with pytest.raises(ValueError, match=r"x has shape \(1, 15, 16, 3\).*multiples of 2"):
    model.apply({"params": params}, jnp.zeros((1, 15, 16, 3)), method=model.encode)
  with pytest.raises(ValueError, match=r"z has shape \(1, 4, 4, 3\)"):
    model.apply({"params": params}, jnp.zeros((1, 4, 4, 3)), method=model.decode)
  with pytest.raises(ValueError, match="down_block_types"):
    vae_kl.AutoencoderKLConfig.from_diffusers(
        {**TINY, "down_block_types": ["CrossAttnDownBlock2D"] * 2})
  with pytest.raises(KeyError, match=r"checkpoint has no tensor .*conv_in\.bias"):
    vae_kl.convert_params(config, {}.__getitem__)


def test_bfloat16_compute_stays_close_to_float32(tiny):
  _, config, params, model = tiny
  model16 = vae_kl.AutoencoderKL(dataclasses.replace(config, dtype=jnp.bfloat16))
  z = np.random.RandomState(2).randn(1, 8, 8, 4).astype(np.float32)
  decode = lambda m: jax.jit(lambda p, z: m.apply({"params": p}, z, method=m.decode))
  out32, out16 = decode(model)(params, z), decode(model16)(params, z)
  assert out16.dtype == jnp.float32
  assert rel_err(out16, np.asarray(out32)) <= 3e-2
