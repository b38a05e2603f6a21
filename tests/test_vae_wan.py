"""Wan 2.1 causal video VAE: float32 parity with diffusers' AutoencoderKLWan on a tiny random model,
decode memory flat in the number of frames, conversion, presets and input errors."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from diffusers import AutoencoderKLWan as TorchAutoencoderKLWan

from jaxgen.bench.reference import randomize, rel_err
from jaxgen.models import vae_common, vae_wan

Z = 8
TINY = dict(base_dim=16, z_dim=Z, dim_mult=[1, 2, 4, 4], num_res_blocks=1,
            temperal_downsample=[False, True, True],
            latents_mean=[0.1 * i for i in range(Z)], latents_std=[1.0 + 0.1 * i for i in range(Z)])


def to_ncthw(x: np.ndarray) -> torch.Tensor:
  return torch.from_numpy(x).permute(0, 4, 1, 2, 3)


def to_nthwc(x: torch.Tensor) -> np.ndarray:
  return x.permute(0, 2, 3, 4, 1).numpy()


@pytest.fixture(scope="module")
def tiny():
  """(reference, config, params, model) for the tiny config, converted through `read`."""
  ref = TorchAutoencoderKLWan(**TINY).eval()
  randomize(ref)
  with torch.no_grad():  # decoded pixels mostly inside [-1, 1], so the reference's clamp hides little
    ref.decoder.conv_out.weight.mul_(0.3)
  state = {k: v.numpy() for k, v in ref.state_dict().items()}
  config = vae_wan.AutoencoderKLWanConfig.from_diffusers(dict(ref.config))
  params = vae_wan.convert_params(config, lambda name: state[name])
  return ref, config, params, vae_wan.AutoencoderKLWan(config)


def test_converted_names_match_reference(tiny):
  ref, config, _, _ = tiny
  assert sorted(vae_wan.source_names(config)) == sorted(ref.state_dict())


def test_encode_matches_diffusers(tiny):
  ref, _, params, model = tiny
  x = np.random.RandomState(0).uniform(-1, 1, (2, 9, 16, 24, 3)).astype(np.float32)
  mean, logvar = jax.jit(lambda p, x: model.apply({"params": p}, x, method=model.encode))(params, x)
  with torch.no_grad():
    post = ref.encode(to_ncthw(x)).latent_dist
  assert mean.shape == logvar.shape == (2, 3, 2, 3, Z)
  assert np.mean(np.abs(post.logvar.numpy()) < 20) > 0.9  # the comparison is not of clipped values
  assert rel_err(mean, to_nthwc(post.mean)) <= 1e-4
  assert rel_err(logvar, to_nthwc(post.logvar)) <= 1e-4


def test_decode_matches_diffusers(tiny):
  ref, _, params, model = tiny
  z = np.random.RandomState(1).randn(2, 3, 2, 3, Z).astype(np.float32)
  out = jax.jit(lambda p, z: model.apply({"params": p}, z, method=model.decode))(params, z)
  with torch.no_grad():
    expected = to_nthwc(ref.decode(to_ncthw(z)).sample)
  assert out.shape == (2, 9, 16, 24, 3) and out.dtype == jnp.float32
  assert np.mean(np.abs(expected) < 1.0) > 0.8  # mostly unclamped values are compared
  assert rel_err(out, expected) <= 1e-4


def test_output_shapes_follow_4n_plus_1(tiny):
  _, _, params, model = tiny
  encode = lambda p, x: model.apply({"params": p}, x, method=model.encode)
  decode = lambda p, z: model.apply({"params": p}, z, method=model.decode)
  for frames, latents in ((1, 1), (5, 2), (17, 5)):
    x = jax.ShapeDtypeStruct((1, frames, 8, 16, 3), jnp.float32)
    mean, _ = jax.eval_shape(encode, params, x)
    assert mean.shape == (1, latents, 1, 2, Z)
    video = jax.eval_shape(decode, params, mean)
    assert video.shape == (1, frames, 8, 16, 3)


def test_decode_memory_does_not_grow_with_frames():
  """Compiled temp bytes of decode are the same at 5, 9 and 17 frames (the output is not temp).

  A 2-level VAE (temporal factor 2), so that each length runs the chunk loop at least twice: with
  a single step (Wan 2.1 at 5 frames) XLA inlines the loop and the temp bytes differ by a constant.
  """
  config = vae_wan.AutoencoderKLWanConfig(
      base_dim=8, z_dim=4, dim_mult=(1, 1), num_res_blocks=1, temporal_downsample=(True,),
      latents_mean=(0.0,) * 4, latents_std=(1.0,) * 4)
  model = vae_wan.AutoencoderKLWan(config)
  x = jax.ShapeDtypeStruct((1, 5, 2, 2, 3), jnp.float32)
  params = jax.eval_shape(lambda x: nn.unbox(model.init(jax.random.key(0), x)["params"]), x)
  decode = jax.jit(lambda p, z: model.apply({"params": p}, z, method=model.decode))
  temp = {}
  for frames in (5, 9, 17):
    z = jax.ShapeDtypeStruct((1, 1 + (frames - 1) // 2, 32, 32, 4), jnp.float32)
    memory = decode.lower(params, z).compile().memory_analysis()
    assert memory.output_size_in_bytes == frames * 64 * 64 * 3 * 4
    temp[frames] = memory.temp_size_in_bytes
  assert temp[5] == temp[9] == temp[17], temp


def test_normalize_uses_per_channel_statistics(tiny):
  _, config, _, model = tiny
  z = jnp.linspace(-2.0, 2.0, 2 * Z).reshape(1, 2, 1, 1, Z)
  mean, std = np.asarray(TINY["latents_mean"]), np.asarray(TINY["latents_std"])
  np.testing.assert_allclose(model.normalize(z), (z - mean) / std, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(model.denormalize(model.normalize(z)), z, rtol=1e-5, atol=1e-6)


def test_preset_matches_reference_config_and_param_count():
  with torch.device("meta"):
    ref = TorchAutoencoderKLWan()  # the Wan 2.1 VAE config is diffusers' default
  config = vae_wan.AutoencoderKLWanConfig.from_diffusers(dict(ref.config))
  assert config == vae_wan.PRESETS["wan2.1-vae"]
  assert (config.spatial_factor, config.temporal_factor, config.z_dim) == (8, 4, 16)
  assert sorted(vae_wan.source_names(config)) == sorted(ref.state_dict())
  assert vae_wan.num_params(config) == sum(p.numel() for p in ref.parameters()) == 126_892_531


def test_encoder_attention_names_match_reference():
  cfg = {**TINY, "attn_scales": [0.5]}
  with torch.device("meta"):
    ref = TorchAutoencoderKLWan(**cfg)
  config = vae_wan.AutoencoderKLWanConfig.from_diffusers(dict(ref.config))
  assert sorted(vae_wan.source_names(config)) == sorted(ref.state_dict())


def test_params_carry_logical_axis_names(tiny):
  _, _, _, model = tiny
  x = jnp.zeros((1, 5, 8, 8, 3))
  variables = jax.eval_shape(model.init, jax.random.key(0), x)
  specs = nn.get_partition_spec(variables)["params"]
  assert tuple(specs["encoder"]["conv_in"]["kernel"]) == (None, None, None, "conv_in", "conv_out")
  assert tuple(specs["decoder"]["up_blocks_0"]["upsamplers_0"]["resample_1"]["kernel"]) == (
      None, None, "conv_in", "conv_out")
  assert tuple(specs["decoder"]["norm_out"]["gamma"]) == ("norm",)
  leaves = jax.tree.leaves(variables["params"], is_leaf=lambda x: isinstance(x, nn.Partitioned))
  assert all(isinstance(leaf, nn.Partitioned) for leaf in leaves)


def test_bad_inputs_raise_before_compiling(tiny):
  _, config, params, model = tiny
  encode = lambda x: model.apply({"params": params}, x, method=model.encode)
  with pytest.raises(ValueError, match=r"T=6 frames.*4n \+ 1"):
    encode(jnp.zeros((1, 6, 16, 16, 3)))
  with pytest.raises(ValueError, match=r"H×W = 12×16.*multiples of 8"):
    encode(jnp.zeros((1, 5, 12, 16, 3)))
  with pytest.raises(ValueError, match=r"x has shape \(5, 16, 16, 3\)"):
    encode(jnp.zeros((5, 16, 16, 3)))
  with pytest.raises(ValueError, match=rf"z has shape \(1, 2, 2, 2, 4\).*\[B, t, h, w, {Z}\]"):
    model.apply({"params": params}, jnp.zeros((1, 2, 2, 2, 4)), method=model.decode)
  with pytest.raises(ValueError, match="is_residual"):
    vae_wan.AutoencoderKLWanConfig.from_diffusers({**TINY, "is_residual": True})
  with pytest.raises(KeyError, match="checkpoint has no tensor"):
    vae_wan.convert_params(config, {}.__getitem__)


@pytest.mark.slow
def test_gradients_reach_every_parameter():
  """A tiny VAE trains: the reconstruction + KL loss has a nonzero gradient for every param."""
  config = vae_wan.AutoencoderKLWanConfig(
      base_dim=8, z_dim=4, dim_mult=(1, 1), num_res_blocks=1, temporal_downsample=(True,),
      latents_mean=(0.0,) * 4, latents_std=(1.0,) * 4)
  model = vae_wan.AutoencoderKLWan(config)
  x = jax.random.uniform(jax.random.key(1), (1, 5, 8, 8, 3), minval=-1.0, maxval=1.0)
  params = nn.unbox(model.init(jax.random.key(0), x)["params"])

  def loss(p, key):
    mean, logvar = model.apply({"params": p}, x, method=model.encode)
    z = vae_common.posterior_sample(key, mean, logvar)
    recon = model.apply({"params": p}, z, clip=False, method=model.decode)
    return jnp.mean(jnp.square(recon - x)) + 1e-3 * vae_common.posterior_kl(mean, logvar).mean()

  grads = jax.jit(jax.grad(loss))(params, jax.random.key(2))
  norms = {jax.tree_util.keystr(k): float(jnp.linalg.norm(g))
           for k, g in jax.tree_util.tree_flatten_with_path(grads)[0]}
  assert all(np.isfinite(v) and v > 0 for v in norms.values()), norms
