"""jaxgen.nn building blocks against the diffusers reference functions, plus sharding metadata."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from diffusers.models import embeddings as ref_emb
from diffusers.models.transformers.transformer_wan import (WanAttention, WanAttnProcessor,
                                                          WanRotaryPosEmbed)

from jaxgen import nn as jnn
from jaxgen.bench.reference import rel_err
from jaxgen.models import dit, pixart, wan
from jaxgen.models.dit_common import TensorReader
from jaxgen.nn.splash import splash_attention, splash_preferred


@pytest.mark.parametrize("dim,flip,shift", [(256, True, 1), (256, True, 0), (33, False, 0)])
def test_timestep_embedding(dim, flip, shift):
  t = np.array([0.0, 1.0, 17.5, 999.0], np.float32)
  want = ref_emb.get_timestep_embedding(torch.from_numpy(t), dim, flip, shift).numpy()
  # At t ~ 1e3 an ulp of a float32 frequency moves the angle by ~6e-5.
  np.testing.assert_allclose(jnn.timestep_embedding(jnp.asarray(t), dim, flip, shift), want,
                             atol=2e-4)


def test_sincos_2d_matches_diffusers():
  want = ref_emb.get_2d_sincos_pos_embed(64, (6, 10), base_size=4, interpolation_scale=0.5).numpy()
  np.testing.assert_allclose(jnn.sincos_2d(64, 6, 10, base_size=4, interpolation_scale=0.5), want,
                             atol=1e-6)


def test_sincos_theta_spreads_a_tiny_grid():
  pos = np.arange(4.0)
  angles = np.outer(pos, [1.0, 1.0 / 3.0])  # theta^(-2i/dim) for theta = 9, dim = 4
  np.testing.assert_allclose(jnn.sincos_1d(4, pos, theta=9.0),
                             np.concatenate([np.sin(angles), np.cos(angles)], axis=1))

  def spread(theta):  # how far positions of a 9x4x4 grid sit from their mean embedding
    table = jnn.sincos_3d(128, 9, 4, 4, theta=theta).reshape(-1, 128)
    return np.linalg.norm(table - table.mean(0), axis=1).mean()
  assert spread(10.0) > 1.5 * spread(1e4)


def test_sincos_3d_matches_diffusers():
  want = ref_emb.get_3d_sincos_pos_embed(32, (10, 6), 3, 2.0, 1.0).numpy()  # spatial (w, h)
  np.testing.assert_allclose(jnn.sincos_3d(32, 3, 6, 10, 2.0, 1.0), want, atol=1e-6)


def test_rope_and_attention_match_wan():
  """Fused-QKV self-attention, QK RMSNorm across heads and 3D RoPE == diffusers' WanAttention."""
  torch.manual_seed(0)
  heads, head_dim, grid = 2, 32, (2, 3, 4)
  ref = WanAttention(dim=64, heads=heads, dim_head=head_dim, eps=1e-6,
                     processor=WanAttnProcessor()).eval()
  with torch.no_grad():
    for p in ref.parameters():
      p.add_(0.3 * torch.randn(p.shape))
  video = torch.zeros(1, 1, grid[0], 2 * grid[1], 2 * grid[2])
  cos, sin = WanRotaryPosEmbed(head_dim, (1, 2, 2), 16)(video)
  ours_cos, ours_sin = jnn.rope_3d(grid, head_dim)
  np.testing.assert_allclose(ours_cos, cos[0, :, 0, 0::2].numpy(), atol=1e-6)
  np.testing.assert_allclose(ours_sin, sin[0, :, 0, 1::2].numpy(), atol=1e-6)

  x = np.random.default_rng(0).standard_normal((2, 24, 64)).astype(np.float32)
  with torch.no_grad():
    want = ref(torch.from_numpy(x), rotary_emb=(cos, sin)).numpy()
  state = {k: v.numpy() for k, v in ref.state_dict().items()}
  read = lambda name: state[name.lstrip(".")]
  params = TensorReader(read, "WanAttention").attention("", 64, heads, head_dim,
                                                        qk_norm="rms_norm_across_heads")
  attn = jnn.Attention(heads, head_dim, qk_norm="rms_norm_across_heads")
  got = attn.apply({"params": params}, x, rope=(ours_cos, ours_sin))
  assert rel_err(got, want) <= 1e-5


def test_attention_mask_and_implementations():
  rng = np.random.default_rng(0)
  q, k, v = (jnp.asarray(rng.standard_normal(s), jnp.float32)
             for s in ((2, 5, 2, 8), (2, 7, 2, 8), (2, 7, 2, 8)))
  mask = jnp.asarray([[True] * 7, [True] * 3 + [False] * 4])
  logits = np.einsum("btnh,bsnh->bnts", q, k) / np.sqrt(8)
  logits = np.where(np.asarray(mask)[:, None, None], logits, -np.inf)
  probs = np.exp(logits - logits.max(-1, keepdims=True))
  want = np.einsum("bnts,bsnh->btnh", probs / probs.sum(-1, keepdims=True), v)
  for impl in (None, "xla"):
    np.testing.assert_allclose(jnn.dot_product_attention(q, k, v, mask, impl), want, atol=1e-5)
  with pytest.raises(ValueError, match="expected one of"):
    jnn.dot_product_attention(q, k, v, implementation="flash")
  with pytest.raises(ValueError, match="needs a TPU"):
    jnn.dot_product_attention(q, k, v, implementation="splash")
  assert not splash_preferred(4096, 4096, has_mask=True)
  assert splash_preferred(4096, 2048, has_mask=False) and not splash_preferred(256, 256, False)


@pytest.mark.parametrize("t,s,h", [(256, 128, 128), (200, 77, 72)])
def test_splash_attention_in_interpret_mode(t, s, h):
  """The TPU kernel's numerics, run through Pallas' interpreter on CPU; odd sizes get padded."""
  rng = np.random.default_rng(0)
  q = jnp.asarray(rng.standard_normal((1, t, 2, h)), jnp.float32)
  k, v = (jnp.asarray(rng.standard_normal((1, s, 2, h)), jnp.float32) for _ in range(2))
  got = splash_attention(q, k, v, interpret=True)
  assert got.shape == q.shape
  assert rel_err(got, jax.nn.dot_product_attention(q, k, v)) <= 1e-5


@pytest.mark.parametrize("patch,shape", [((2, 2), (2, 6, 8, 3)), ((1, 2, 2), (1, 3, 4, 6, 5))])
def test_patchify_round_trip(patch, shape):
  x = jnp.arange(np.prod(shape), dtype=jnp.float32).reshape(shape)
  tokens = jnn.patchify(x, patch)
  grid = tuple(s // p for s, p in zip(shape[1:-1], patch))
  assert tokens.shape == (shape[0], np.prod(grid), np.prod(patch) * shape[-1])
  np.testing.assert_array_equal(jnn.unpatchify(tokens, grid, patch), x)
  # Token 0 holds the first patch, its features ordered (*patch, C).
  first = x[(0,) + tuple(slice(0, p) for p in patch)].reshape(-1)
  np.testing.assert_array_equal(tokens[0, 0], first)


class _Stack(nn.Module):
  remat_policy: str

  @nn.compact
  def __call__(self, x):
    class Block(nn.Module):
      @nn.compact
      def __call__(self, x):
        return x + jnn.Mlp(16)(nn.LayerNorm()(x)), None

    stack = jnn.scan_layers(Block, 3, in_axes=(), remat_policy=self.remat_policy)
    return stack(name="blocks")(x)[0]


def test_scan_remat_policies_agree():
  x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 4, 8)), jnp.float32)
  params = _Stack("none").init(jax.random.key(0), x)
  assert params["params"]["blocks"]["Mlp_0"]["up"]["kernel"].names == ("layers", "embed", "mlp")
  grads = [jax.grad(lambda p: jnp.sum(_Stack(name).apply(p, x) ** 2))(params)
           for name in ("none", "full", "dots_saveable")]
  for g in grads[1:]:
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), g, grads[0])
  with pytest.raises(ValueError, match="remat_policy"):
    _Stack("sometimes").init(jax.random.key(0), x)


def _tiny_models():
  yield dit.DiT(dit.DiTConfig(num_layers=2, num_heads=2, head_dim=16, num_classes=5)), (
      jnp.zeros((1, 8, 8, 4)), jnp.zeros((1,)), jnp.zeros((1,), jnp.int32))
  yield pixart.PixArt(pixart.PixArtConfig(num_layers=2, num_heads=2, head_dim=24,
                                          caption_channels=8, use_additional_conditions=True)), (
      jnp.zeros((1, 8, 8, 4)), jnp.zeros((1,)), jnp.zeros((1, 3, 8)), None, jnp.zeros((1, 2)),
      jnp.zeros((1,)))
  yield wan.Wan(wan.WanConfig(num_layers=2, num_heads=2, head_dim=16, ffn_dim=32, text_dim=8,
                              attention="factorized")), (
      jnp.zeros((1, 2, 4, 4, 16)), jnp.zeros((1,)), jnp.zeros((1, 3, 8)))


@pytest.mark.parametrize("index", range(3))
def test_every_param_has_logical_names(index):
  model, args = list(_tiny_models())[index]
  boxed = jax.eval_shape(model.init, jax.random.key(0), *args)["params"]
  leaves = jax.tree.leaves(boxed, is_leaf=lambda x: isinstance(x, nn.LogicallyPartitioned))
  for leaf in leaves:
    assert isinstance(leaf, nn.LogicallyPartitioned), leaf
    assert len(leaf.names) == leaf.value.ndim, leaf
    mesh_axes = [n for n in leaf.names if n is not None]
    assert len(mesh_axes) == len(set(mesh_axes)), leaf.names
  stacked = [leaf for leaf in leaves if leaf.names[0] == "layers"]
  assert stacked and all(leaf.value.shape[0] == 2 for leaf in stacked)


def test_sharded_forward_on_a_mesh():
  """The logical names map onto an 8-device mesh; the sharded forward equals the unsharded one."""
  config = wan.WanConfig(in_channels=4, out_channels=4, num_layers=2, num_heads=2, head_dim=16,
                         ffn_dim=64, text_dim=8, freq_dim=32)
  model = wan.Wan(config)
  rng = np.random.default_rng(0)
  args = (jnp.asarray(rng.standard_normal((4, 2, 4, 4, 4)), jnp.float32), jnp.full((4,), 500.0),
          jnp.asarray(rng.standard_normal((4, 3, 8)), jnp.float32))
  variables = jax.jit(model.init)(jax.random.key(0), *args)
  variables = jax.tree.map(lambda x: x + 0.05, nn.unbox(variables))  # Non-zero output layers.
  want = jax.jit(model.apply)(variables, *args)
  mesh = jax.make_mesh((2, 2, 2), ("data", "fsdp", "tensor"),
                       axis_types=(jax.sharding.AxisType.Auto,) * 3)
  rules = (("batch", "data"), ("embed", "fsdp"), ("heads", "tensor"), ("mlp", "tensor"))
  specs = nn.get_partition_spec(jax.eval_shape(model.init, jax.random.key(0), *args))
  with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
    shardings = nn.logical_to_mesh_sharding(specs, mesh, rules)
    sharded = jax.device_put(variables, shardings)
    got = jax.jit(model.apply)(sharded, *args)
  assert rel_err(got, want) <= 1e-5
