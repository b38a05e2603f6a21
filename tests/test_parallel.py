"""jaxgen.parallel on 8 simulated CPU devices: data, fsdp, tensor, context and a mixed 2×2×2 layout
give a tiny Wan's train step and full sampling loop the numbers of one device; params are really
split; ring/Ulysses attention equal plain attention; AOT memory; the errors people see."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxgen.diffusion import schedules
from jaxgen.diffusion.samplers import SamplerConfig
from jaxgen.models.wan import Wan, WanConfig
from jaxgen.parallel import checks, context, memory, memory_cli
from jaxgen.parallel import mesh as mesh_lib
from jaxgen.parallel import rules as rules_lib
from jaxgen.parallel import sharding as sh
from jaxgen.parallel import steps

RULES = rules_lib.RULES
# Low LLVM effort: these programs are tiny, and compiling is most of the suite's time on CPU.
FAST = {"xla_backend_optimization_level": 0}
TINY = WanConfig(patch_size=(1, 2, 2), in_channels=4, out_channels=4, num_layers=2, num_heads=8,
                 head_dim=8, ffn_dim=128, text_dim=32, freq_dim=32)
SCHEDULE = schedules.FlowSchedule(shift=3.0)
SAMPLER = SamplerConfig("flow_euler", 3)
TX = optax.adamw(1e-3)
EXAMPLE = (jnp.zeros((1, 2, 8, 8, 4)), jnp.zeros((1,)), jnp.zeros((1, 8, 32)))
# layout -> attention implementation; the context layouts split the 32 tokens of each video.
LAYOUTS = {
    "data=8": None,
    "fsdp=8": None,
    "tensor=8": None,
    "context=8": "ring",
    "fsdp=2,context=2,tensor=2": None,
}


def rel_err(a, b) -> float:
  flat = lambda t: np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in jax.tree.leaves(t)])
  a, b = flat(a), flat(b)
  return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _data():
  rng = np.random.default_rng(0)
  batch = {"latents": rng.standard_normal((8, 2, 8, 8, 4)).astype(np.float32),
           "context": rng.standard_normal((8, 8, 32)).astype(np.float32)}
  noise = rng.standard_normal((8, 2, 8, 8, 4)).astype(np.float32)
  return batch, noise


def _run(mesh, attention_impl, init_state):
  """One train step and one guided 3-step sampling loop on mesh, from init_state (host numpy)."""
  model = Wan(dataclasses.replace(TINY, attention_impl=attention_impl))
  _, state_sh = steps.abstract_train_state(model, TX, mesh, RULES, EXAMPLE)
  state = jax.device_put(init_state, state_sh)
  batch, noise = _data()
  batch_sh = sh.batch_shardings(batch, mesh, RULES)
  batch = jax.device_put(batch, batch_sh)
  step = steps.shard_train_step(
      steps.train_step_fn(steps.diffusion_loss_fn(model, SCHEDULE, "flow"), TX), mesh, RULES,
      state_sh, batch_sh, compiler_options=FAST)
  state, metrics = step(state, batch, jax.random.key(1))
  cond = {"context": batch["context"]}
  negative = {"context": jnp.zeros_like(batch["context"])}
  sampler = steps.shard_sample(steps.sample_fn(model, SAMPLER, SCHEDULE, "flow"), mesh, RULES,
                               state_sh.params, cond, guided=True, compiler_options=FAST)
  x = sampler(state.params, noise, cond, negative, jax.random.key(2), jnp.float32(4.0))
  return state, state_sh, float(metrics["loss"]), x


@pytest.fixture(scope="module")
def reference():
  """Sharded init on the mixed mesh, and the one-device results it must reproduce everywhere."""
  mesh = mesh_lib.make_mesh("fsdp=2,context=2,tensor=2")
  state, state_sh = steps.init_train_state(Wan(TINY), TX, mesh, RULES, EXAMPLE, jax.random.key(0))
  init_state = jax.device_get(state)
  one = mesh_lib.make_mesh("data=1", jax.devices()[:1])
  state1, _, loss, x = _run(one, None, init_state)
  return {"init": init_state, "init_sharded": state, "init_shardings": state_sh,
          "params": jax.device_get(state1.params), "loss": loss, "sample": np.asarray(x)}


def test_sharded_init_matches_one_device(reference):
  """jit(init, out_shardings) on 8 devices gives the values init gives on one device."""
  one = mesh_lib.make_mesh("data=1", jax.devices()[:1])
  state, _ = steps.init_train_state(Wan(TINY), TX, one, RULES, EXAMPLE, jax.random.key(0))
  assert rel_err(reference["init"].params, jax.device_get(state.params)) == 0.0
  leaf = reference["init_sharded"].params["blocks"]["mlp"]["up"]["kernel"]  # [layers, embed, mlp]
  assert leaf.sharding.spec == jax.sharding.PartitionSpec(None, ("fsdp", "context"), "tensor")
  assert leaf.addressable_shards[0].data.shape == (2, 16, 64)


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_layout_matches_one_device(reference, layout):
  """Train step (loss, updated params) and full sampling loop equal one device's to 1e-5."""
  mesh = mesh_lib.make_mesh(layout)
  state, state_sh, loss, x = _run(mesh, LAYOUTS[layout], reference["init"])
  assert abs(loss - reference["loss"]) <= 1e-5 * abs(reference["loss"])
  assert rel_err(jax.device_get(state.params), reference["params"]) <= 1e-5
  assert rel_err(x, reference["sample"]) <= 1e-5
  assert x.sharding.spec[0] == ("data", "fsdp")

  # Every param and Adam moment holds exactly its share: bytes / (shards of its spec).
  for tree, shardings in ((state.params, state_sh.params), (state.opt_state, state_sh.opt_state)):
    expected = sum(leaf.nbytes // sh.shard_count(s, leaf.ndim)
                   for leaf, s in zip(jax.tree.leaves(tree), jax.tree.leaves(shardings)))
    per_device = sh.per_device_bytes(tree)
    assert len(per_device) == 8 and set(per_device.values()) == {expected}
  total = sum(leaf.nbytes for leaf in jax.tree.leaves(state.params))
  split8 = sum(leaf.nbytes for leaf, s in zip(jax.tree.leaves(state.params),
                                              jax.tree.leaves(state_sh.params))
               if sh.shard_count(s, leaf.ndim) == 8)
  if layout in ("fsdp=8", "context=8"):
    # Every tensor with an embed dim (all but a few biases and norm scales) is split 8 ways.
    assert split8 >= 0.85 * total
  if layout == "data=8":
    assert split8 == 0 and set(sh.per_device_bytes(state.params).values()) == {total}


@pytest.fixture(scope="module")
def qkv():
  rng = np.random.default_rng(3)
  q, k, v = (jnp.asarray(rng.standard_normal((4, 32, 4, 8)), jnp.float32) for _ in range(3))
  mask = jnp.asarray(rng.random((4, 32)) > 0.3)
  return q, k, v, mask


@pytest.mark.parametrize("layout,impl,chunk", [
    ("context=8", "ring", 1024), ("context=8", "ring", 2),
    ("data=2,context=2,tensor=2", "ulysses", 1024)])
def test_context_parallel_attention(qkv, layout, impl, chunk):
  """Ring (with key chunks) and Ulysses attention and their gradients equal plain attention."""
  q, k, v, mask = qkv
  plain = lambda q, k, v: jax.nn.dot_product_attention(q, k, v, mask=mask[:, None, None, :])
  split = lambda q, k, v: context.attention(q, k, v, mask, impl, max_chunk=chunk)
  loss = lambda f: lambda q, k, v: jnp.sum(jnp.sin(f(q, k, v)))
  ref_out, ref_grads = plain(q, k, v), jax.grad(loss(plain), argnums=(0, 1, 2))(q, k, v)
  with sh.use(mesh_lib.make_mesh(layout), RULES):
    grad = jax.grad(loss(split), argnums=(0, 1, 2))
    fn = jax.jit(lambda q, k, v: (split(q, k, v), grad(q, k, v)))
    out, grads = fn(q, k, v)
    hlo = fn.lower(q, k, v).compile().as_text()
  assert rel_err(out, ref_out) <= 1e-5
  assert rel_err(grads, ref_grads) <= 1e-5
  assert ("collective-permute" if impl == "ring" else "all-to-all") in hlo


def test_ring_without_mesh_is_chunked_attention(qkv):
  q, k, v, mask = qkv
  out = context.attention(q, k, v, mask, "ring", max_chunk=8)
  ref = jax.nn.dot_product_attention(q, k, v, mask=mask[:, None, None, :])
  assert rel_err(out, ref) <= 1e-5


def test_mesh_config():
  mesh = mesh_lib.make_mesh("data=2,fsdp=-1,tensor=2")
  assert dict(mesh.shape) == {"data": 2, "fsdp": 2, "context": 1, "tensor": 2}
  assert dict(mesh_lib.make_mesh().shape) == {"data": 1, "fsdp": 8, "context": 1, "tensor": 1}
  # One process: DCN axes fill to 1 granule.
  assert dict(mesh_lib.make_mesh("dcn_data=-1,fsdp=-1").shape)["fsdp"] == 8
  assert mesh_lib.MeshConfig.parse({"context": 8}).ici == (1, 1, 8, 1)


def test_host_rows_and_global_batch():
  mesh = mesh_lib.make_mesh("data=2,fsdp=4")
  rows = np.arange(8 * 3, dtype=np.float32).reshape(8, 3)
  out = sh.global_batch({"x": rows}, mesh, RULES, 8)["x"]
  assert out.shape == (8, 3) and out.sharding.spec[0] == ("data", "fsdp")
  np.testing.assert_array_equal(np.asarray(out), rows)
  with pytest.raises(ValueError, match="host batch 'x' has 4 rows; expected 8"):
    sh.global_batch({"x": rows[:4]}, mesh, RULES, 8)


def test_memory_report_scales_with_fsdp():
  """AOT: with fsdp=8 each device holds about 1/8 of the params and Adam state, plus its batch."""
  config = dataclasses.replace(TINY, remat_policy="full")
  report = memory.analyze(Wan(config), config, mesh_lib.make_mesh("fsdp=8"), RULES, batch_size=8,
                          latent_shape=(2, 8, 8, 4), text_len=8, compiler_options=FAST)
  assert report.num_params == 141008 and report.tokens == 32
  state = 16 * report.num_params  # f32 params, grads and two Adam moments on one device.
  assert state / 8 <= report.state_bytes < 0.15 * state
  params_and_adam = report.state_bytes - report.state_bytes // 4  # ... less the gradients
  batch = (2 * 8 * 8 * 4 + 8 * 32) * 4  # one video's latents and text, f32
  assert 0.95 <= report.argument_bytes / (params_and_adam + batch) <= 1.05
  assert report.saved_activation_bytes == 2 * 1 * 32 * 64 * 4  # layers · B/8 · tokens · D · f32
  assert report.peak_bytes > report.argument_bytes and "peak per device" in report.format(80e9)
  assert memory.latent_shape_for(81, 480, 832) == (21, 60, 104, 16)
  assert memory.parse_bytes("80GB") == 80e9 and memory.parse_bytes("1GiB") == 2**30


def test_memory_cli_arguments():
  import argparse

  parser = argparse.ArgumentParser()
  memory_cli.add_arguments(parser)
  args = parser.parse_args(["--mesh", "fsdp=8", "--device-memory", "80GB"])
  assert args.preset == "wan2.1-t2v-14b"
  assert (args.frames, args.height, args.width) == (81, 480, 832)
  with pytest.raises(ValueError, match="expected frames = 1 \\+ 4·k"):
    memory_cli.run(parser.parse_args(["--frames", "80"]))


def test_error_mesh_does_not_divide_devices():
  with pytest.raises(ValueError, match="do not divide the 8 devices"):
    mesh_lib.make_mesh("data=3,fsdp=-1")
  with pytest.raises(ValueError, match="has 4 devices; expected the 8 devices present"):
    mesh_lib.make_mesh("data=2,fsdp=2")
  with pytest.raises(ValueError, match="more than one -1"):
    mesh_lib.MeshConfig(data=-1, fsdp=-1)
  with pytest.raises(ValueError, match="names \\['expert'\\]"):
    mesh_lib.MeshConfig.parse("expert=2")
  with pytest.raises(ValueError, match="do not divide the 1 slices \\(or processes\\)"):
    mesh_lib.make_mesh("dcn_data=2,fsdp=-1")


def test_error_rule_names_missing_mesh_axis():
  mesh = mesh_lib.make_mesh("fsdp=8")
  bad = RULES + (("experts", "expert"),)
  with pytest.raises(ValueError, match="mesh axes \\['expert'\\] that the mesh does not have"):
    rules_lib.check_rules(bad, mesh)
  with pytest.raises(ValueError, match="that the mesh does not have"):
    steps.init_train_state(Wan(TINY), TX, mesh, bad, EXAMPLE, jax.random.key(0))
  with pytest.raises(ValueError, match="logical axes \\['experts'\\]"):
    rules_lib.make_rules({"experts": "tensor"})


def test_error_heads_do_not_divide_tensor_axis():
  mesh = mesh_lib.make_mesh("fsdp=2,tensor=4")
  config = dataclasses.replace(TINY, num_heads=6)
  with pytest.raises(ValueError, match="num_heads=6 does not divide the 4 shards of mesh axes "
                                       "'tensor'"):
    checks.check_model(config, mesh, RULES)
  # Without the check, sharded init still refuses, naming the param.
  with pytest.raises(ValueError, match="\\['blocks'\\].*split over mesh axes 'tensor'"):
    sh.init_sharded(lambda k: Wan(config).init(k, *EXAMPLE), mesh, RULES, jax.random.key(0))
  with pytest.raises(ValueError, match="batch size 5 does not split"):
    checks.check_batch(5, mesh, RULES)


def test_error_ulysses_heads_do_not_divide_context(qkv):
  q, k, v, _ = qkv  # 4 heads
  with sh.use(mesh_lib.make_mesh("context=8"), RULES):
    with pytest.raises(ValueError, match="splits the 4 heads per device over the context axis"):
      jax.jit(lambda q, k, v: context.attention(q, k, v, None, "ulysses"))(q, k, v)


def test_logical_rules_keep_activation_embed_whole():
  """Activations: batch takes fsdp first, so embed stays whole; params: embed takes fsdp."""
  with nn.logical_axis_rules(RULES):
    assert nn.logical_to_mesh_axes(("batch", "length", "embed")) == jax.sharding.PartitionSpec(
        ("data", "fsdp"), "context", None)
    assert nn.logical_to_mesh_axes(("embed", "mlp")) == jax.sharding.PartitionSpec(
        ("fsdp", "context"), "tensor")
