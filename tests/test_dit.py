"""DiT: parity with diffusers' DiTTransformer2DModel, preset parameter counts, bf16, errors."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from diffusers import DiTTransformer2DModel

from jaxgen.bench.reference import randomize, rel_err
from jaxgen.models import dit
from jaxgen.models.dit_common import count_params

TINY = dict(num_attention_heads=2, attention_head_dim=32, in_channels=4, out_channels=8,
            num_layers=2, sample_size=8, patch_size=2, num_embeds_ada_norm=10)


@pytest.fixture(scope="module")
def tiny():
  """The tiny reference, our converted params and a jitted forward, shared by the tests here."""
  ref = DiTTransformer2DModel(**TINY).eval()
  randomize(ref)
  config = dit.DiTConfig.from_diffusers(dict(ref.config))
  state = {k: v.numpy() for k, v in ref.state_dict().items()}
  params = dit.convert_params(config, state.__getitem__)
  return ref, config, params


def _inputs(b=2, size=8, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((b, size, size, 4)).astype(np.float32)
  t = np.array([3.0, 917.0][:b], np.float32)
  y = np.array([1, 10][:b], np.int32)  # 10 = the null class (config.null_class)
  return x, t, y


def test_parity_with_diffusers(tiny):
  ref, config, params = tiny
  x, t, y = _inputs()
  with torch.no_grad():
    want = ref(torch.from_numpy(x).permute(0, 3, 1, 2), torch.from_numpy(t),
               torch.from_numpy(y).long()).sample.permute(0, 2, 3, 1).numpy()
  got = jax.jit(dit.DiT(config).apply)({"params": params}, x, t, y)
  assert got.shape == (2, 8, 8, 8)
  assert rel_err(got, want) <= 1e-4


def test_bf16_close_to_f32(tiny):
  _, config, params = tiny
  x, t, y = _inputs()
  f32 = jax.jit(dit.DiT(config).apply)({"params": params}, x, t, y)
  model = dit.DiT(dataclasses.replace(config, dtype=jnp.bfloat16))
  bf16 = jax.jit(model.apply)({"params": params}, x, t, y)
  assert bf16.dtype == jnp.bfloat16
  assert rel_err(bf16.astype(jnp.float32), f32) <= 3e-2


def test_init_matches_converted_tree(tiny):
  _, config, params = tiny
  x, t, y = _inputs()
  shapes = jax.eval_shape(dit.DiT(config).init, jax.random.key(0), x, t, y)["params"]
  unboxed = jax.tree.map(lambda s: s.shape, nn_unbox(shapes))
  assert unboxed == jax.tree.map(np.shape, params)


def nn_unbox(tree):
  import flax.linen as nn
  return nn.unbox(tree)


@pytest.mark.parametrize("name", sorted(dit.PRESETS))
def test_preset_param_count(name):
  config = dit.PRESETS[name]
  with torch.device("meta"):
    ref = DiTTransformer2DModel(
        num_attention_heads=config.num_heads, attention_head_dim=config.head_dim,
        in_channels=config.in_channels, out_channels=config.out_channels,
        num_layers=config.num_layers, sample_size=config.sample_size, patch_size=config.patch_size,
        num_embeds_ada_norm=config.num_classes)
  n = config.sample_size
  shapes = jax.eval_shape(dit.DiT(config).init, jax.random.key(0), jnp.zeros((1, n, n, 4)),
                          jnp.zeros((1,)), jnp.zeros((1,), jnp.int32))
  assert count_params(shapes) == sum(p.numel() for p in ref.parameters())


def test_bad_inputs_raise(tiny):
  _, config, params = tiny
  x, t, y = _inputs()
  model = dit.DiT(config)
  with pytest.raises(ValueError, match="x has shape"):
    model.apply({"params": params}, x[..., :3], t, y)
  with pytest.raises(ValueError, match="multiple of the patch size"):
    model.apply({"params": params}, x[:, :7], t, y)
  with pytest.raises(ValueError, match="t has shape"):
    model.apply({"params": params}, x, t[:1], y)
  with pytest.raises(ValueError, match="integer class labels"):
    model.apply({"params": params}, x, t, y.astype(np.float32))


def test_conversion_errors(tiny):
  ref, config, _ = tiny
  state = {k: v.numpy() for k, v in ref.state_dict().items()}
  missing = dict(state)
  del missing["transformer_blocks.1.attn1.to_k.weight"]
  with pytest.raises(ValueError, match="no tensor 'transformer_blocks.1.attn1.to_k.weight'"):
    dit.convert_params(config, missing.__getitem__)
  with pytest.raises(ValueError, match="expects"):
    dit.convert_params(dataclasses.replace(config, head_dim=16), state.__getitem__)


def test_config_validation():
  with pytest.raises(ValueError, match="remat_policy"):
    dit.DiTConfig(remat_policy="some")
  with pytest.raises(ValueError, match="dtype"):
    dit.DiTConfig(dtype="int8")
  with pytest.raises(ValueError, match="norm_type"):
    dit.DiTConfig.from_diffusers({"norm_type": "ada_norm_single"})
  assert dit.DiTConfig(dtype="bfloat16") == dit.DiTConfig(dtype=jnp.bfloat16)
