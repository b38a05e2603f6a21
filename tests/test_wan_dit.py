"""Wan 2.1 video DiT: parity with diffusers' WanTransformer3DModel, preset parameter counts, bf16,
the factorized block's zero-init identity, input errors."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from diffusers import WanTransformer3DModel

from jaxgen.bench.reference import randomize, rel_err
from jaxgen.models import wan
from jaxgen.models.dit_block import DiTBlock
from jaxgen.models.dit_common import count_params
from jaxgen.nn.rope import rope_3d

TINY = dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=32, in_channels=4,
            out_channels=4, text_dim=24, freq_dim=32, ffn_dim=96, num_layers=2)


@pytest.fixture(scope="module")
def tiny():
  ref = WanTransformer3DModel(**TINY).eval()
  randomize(ref)
  config = wan.WanConfig.from_diffusers(dict(ref.config))
  state = {k: v.numpy() for k, v in ref.state_dict().items()}
  return ref, config, wan.convert_params(config, state.__getitem__)


def _inputs(seed=0):
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((2, 3, 6, 8, 4)).astype(np.float32)  # 3 × 3 × 4 tokens
  t = np.array([12.0, 955.0], np.float32)
  context = rng.standard_normal((2, 5, 24)).astype(np.float32)
  return x, t, context


@pytest.fixture(scope="module")
def forward(tiny):
  return jax.jit(wan.Wan(tiny[1]).apply)


def test_parity_with_diffusers(tiny, forward):
  ref, config, params = tiny
  x, t, context = _inputs()
  with torch.no_grad():
    want = ref(torch.from_numpy(x).permute(0, 4, 1, 2, 3), torch.from_numpy(t),
               torch.from_numpy(context)).sample.permute(0, 2, 3, 4, 1).numpy()
  got = forward({"params": params}, x, t, context)
  assert got.shape == x.shape
  assert rel_err(got, want) <= 1e-4


def test_bf16_close_to_f32(tiny, forward):
  _, config, params = tiny
  inputs = _inputs()
  f32 = forward({"params": params}, *inputs)
  model = wan.Wan(dataclasses.replace(config, dtype=jnp.bfloat16))
  bf16 = jax.jit(model.apply)({"params": params}, *inputs)
  assert bf16.dtype == jnp.bfloat16
  assert rel_err(bf16.astype(jnp.float32), f32) <= 3e-2


def test_init_matches_converted_tree(tiny):
  _, config, params = tiny
  shapes = jax.eval_shape(wan.Wan(config).init, jax.random.key(0), *_inputs())["params"]
  assert jax.tree.map(lambda s: s.shape, nn.unbox(shapes)) == jax.tree.map(np.shape, params)


@pytest.mark.parametrize("name", sorted(wan.PRESETS))
def test_preset_param_count(name):
  config = wan.PRESETS[name]
  with torch.device("meta"):
    ref = WanTransformer3DModel(
        patch_size=config.patch_size, num_attention_heads=config.num_heads,
        attention_head_dim=config.head_dim, in_channels=config.in_channels,
        out_channels=config.out_channels, text_dim=config.text_dim, freq_dim=config.freq_dim,
        ffn_dim=config.ffn_dim, num_layers=config.num_layers,
        cross_attn_norm=config.cross_attn_norm)
  args = (jnp.zeros((1, 1, 2, 2, config.in_channels)), jnp.zeros((1,)),
          jnp.zeros((1, 8, config.text_dim)))
  shapes = jax.eval_shape(wan.Wan(config).init, jax.random.key(0), *args)
  assert count_params(shapes) == sum(p.numel() for p in ref.parameters())


def test_factorized_temporal_layer_starts_as_identity():
  grid, d = (3, 2, 4), 64
  block = dict(num_heads=2, head_dim=32, mlp_hidden=96, cross_attention=True, cross_norm=True,
               qk_norm="rms_norm_across_heads", factorized_grid=grid)
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((2, 24, d)), jnp.float32)
  c = jnp.asarray(rng.standard_normal((2, 6, d)), jnp.float32)
  context = jnp.asarray(rng.standard_normal((2, 5, d)), jnp.float32)
  rope = tuple(jnp.asarray(r) for r in rope_3d(grid, 32))
  full = DiTBlock(**block)
  params = jax.jit(full.init)(jax.random.key(0), x, c, context, None, rope)["params"]
  # Random weights everywhere except the temporal output projection, which keeps its zero init.
  leaves, tree = jax.tree.flatten_with_path(nn.unbox(params))
  keys = jax.random.split(jax.random.key(1), len(leaves))
  params = jax.tree.unflatten(tree, [
      v if "temporal_attn" in jax.tree_util.keystr(path) and "'out'" in jax.tree_util.keystr(path)
      else 0.3 * jax.random.normal(k, v.shape) for (path, v), k in zip(leaves, keys)])
  assert not np.any(params["temporal_attn"]["out"]["kernel"])
  spatial_only = {k: v for k, v in params.items() if k != "temporal_attn"}
  apply = jax.jit(full.apply)
  got, _ = apply({"params": params}, x, c, context, None, rope)
  want, _ = jax.jit(DiTBlock(**block, temporal=False).apply)(
      {"params": spatial_only}, x, c, context, None, rope)
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
  # Once trained (non-zero), the temporal layer mixes frames.
  params["temporal_attn"]["out"]["kernel"] = jnp.ones_like(params["temporal_attn"]["out"]["kernel"])
  moved, _ = apply({"params": params}, x, c, context, None, rope)
  assert rel_err(moved, want) > 1e-2


def test_factorized_model_runs():
  config = wan.WanConfig(in_channels=4, out_channels=4, num_layers=2, num_heads=2, head_dim=32,
                         ffn_dim=96, text_dim=24, freq_dim=32, attention="factorized",
                         remat_policy="dots_saveable")
  x, t, context = _inputs()
  variables = jax.jit(wan.Wan(config).init)(jax.random.key(0), x, t, context)
  temporal = variables["params"]["blocks"]["temporal_attn"]
  assert temporal["qkv"]["kernel"].value.shape == (2, 64, 3, 2, 32)
  loss = lambda p: jnp.mean(wan.Wan(config).apply(p, x, t, context) ** 2)
  grads = jax.jit(jax.grad(loss))(variables)
  assert all(np.isfinite(g).all() for g in jax.tree.leaves(grads))


def test_pooled_text_reaches_the_modulation():
  """The SD3-style extension: a pooled text embedding added to the timestep embedding."""
  config = wan.WanConfig(in_channels=4, out_channels=4, num_layers=1, num_heads=2, head_dim=32,
                         ffn_dim=96, text_dim=24, freq_dim=32, pooled_text_dim=24)
  x, t, context = _inputs()
  pooled = jax.random.normal(jax.random.key(1), (x.shape[0], 24))
  model = wan.Wan(config)
  params = nn.meta.unbox(jax.jit(model.init)(jax.random.key(0), x, t, context, None,
                                             pooled)["params"])
  assert set(params["pooled_text_embed"]) == {"linear_1", "linear_2"}
  # The output layer starts at zero (DiT practice); give it weights so the output shows the change.
  kernel = params["proj_out"]["kernel"]
  params["proj_out"]["kernel"] = jax.random.normal(jax.random.key(2), kernel.shape)
  apply = jax.jit(lambda p: model.apply({"params": params}, x, t, context, None, p))
  a, b = apply(pooled), apply(2.0 * pooled)
  assert rel_err(a, b) > 1e-3
  with pytest.raises(ValueError, match="pooled is None but the config has pooled_text_dim=24"):
    model.apply({"params": params}, x, t, context)
  with pytest.raises(ValueError, match="pooled has shape"):
    model.apply({"params": params}, x, t, context, None, pooled[:, :8])


def test_sincos_positions_break_token_permutation_symmetry():
  """With fixed sin-cos positions added, shuffling the frames no longer just shuffles the output
  (RoPE alone at θ = 10⁴ hardly separates the few positions of a tiny grid)."""
  kwargs = dict(in_channels=4, out_channels=4, num_layers=1, num_heads=2, head_dim=32, ffn_dim=96,
                text_dim=24, freq_dim=32)
  x, t, context = _inputs()
  perm = np.array([2, 0, 1])  # of the 3 frames
  errors = {}
  for pos_embed in (None, "sincos"):
    model = wan.Wan(wan.WanConfig(pos_embed=pos_embed, **kwargs))
    params = nn.meta.unbox(jax.jit(model.init)(jax.random.key(0), x, t, context)["params"])
    params["proj_out"]["kernel"] = jax.random.normal(jax.random.key(2),
                                                     params["proj_out"]["kernel"].shape)
    apply = jax.jit(lambda v, m=model, p=params: m.apply({"params": p}, v, t, context))
    errors[pos_embed] = rel_err(apply(x[:, perm])[:, np.argsort(perm)], apply(x))
  assert errors["sincos"] > 3 * errors[None], errors
  with pytest.raises(ValueError, match="pos_embed='learned'"):
    wan.WanConfig(pos_embed="learned")


def test_bad_inputs_raise(tiny):
  _, config, params = tiny
  x, t, context = _inputs()
  apply = wan.Wan(config).apply
  with pytest.raises(ValueError, match=r"x has shape \[2, 6, 8, 4\]"):
    apply({"params": params}, x[:, 0], t, context)
  with pytest.raises(ValueError, match="multiple of the patch size"):
    apply({"params": params}, x[:, :, :5], t, context)
  with pytest.raises(ValueError, match="context has shape"):
    apply({"params": params}, x, t, context[..., :8])
  with pytest.raises(ValueError, match="rope_max_seq_len"):
    small = wan.Wan(dataclasses.replace(config, rope_max_seq_len=2))
    small.apply({"params": params}, x, t, context)


def test_config_errors():
  with pytest.raises(ValueError, match="attention="):
    wan.WanConfig(attention="axial")
  with pytest.raises(ValueError, match="image-to-video"):
    wan.WanConfig.from_diffusers({"image_dim": 1280, "added_kv_proj_dim": 5120})
  with pytest.raises(ValueError, match="factorized"):
    wan.convert_params(wan.WanConfig(attention="factorized"), {}.__getitem__)
  assert wan.WanConfig(patch_size=[1, 2, 2], dtype="float32") == wan.PRESETS["wan2.1-t2v-1.3b"]
