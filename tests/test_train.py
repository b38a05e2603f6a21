"""jaxgen.train: optimizer, EMA, frame masks, config overrides, a real train step on tiny configs
with mock data, and resume continuing the same loss curve bit for bit."""

import os
import shutil

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxgen.data import moving_digits as md
from jaxgen.data import vocab
from jaxgen.pipelines import bundle, load
from jaxgen.pipelines.pixels import to_unit_range
from jaxgen.train import config_lib, ema, fast_conv, loop, masks, optim
from jaxgen.train import checkpoint as ckpt_lib
from jaxgen.train import latents as latents_lib
from jaxgen.train.tasks import t2v, vae
from jaxgen.zoo import native

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "experiments", "configs")


def _mock_source(n: int, frames: int = 5, size: int = 8) -> list[dict]:
  """Moving Digits examples cropped to `frames` frames of size x size (a multiple of 4)."""
  out = []
  for i in range(n):
    e = md.example(0, "train", i)
    out.append({**e, "video": e["video"][:frames, 8:8 + size, 8:8 + size]})
  return out


def _base_config(task: str, workdir_steps: int = 4) -> ml_collections.ConfigDict:
  import sys
  sys.path.insert(0, CONFIGS)
  import common  # pylint: disable=g-import-not-at-top
  c = common.base_config(task, runlocal=True)
  c.num_steps = workdir_steps
  c.batch_size = 2
  c.log_every = 1
  c.checkpoint_every = 2
  c.num_samples = 2
  c.mesh.data = 1  # one device of the 8 simulated ones: a 1x1 mesh
  return c


def _vae_config() -> ml_collections.ConfigDict:
  c = _base_config("vae")
  c.model = ml_collections.ConfigDict(dict(
      base_dim=4, z_dim=4, dim_mult=(1, 2), num_res_blocks=1, attn_scales=(),
      temporal_downsample=(True,), kl_weight=1e-3, glyph_weight=4.0, train_frames=0))
  return c


class MockVAETask(vae.VAETask):
  """The VAE task on in-memory 5-frame 8x8 videos."""

  def data_source(self, split: str):
    return _mock_source(8)


# ---- optimizer, EMA ------------------------------------------------------------------------------

def test_learning_rate_warmup_then_cosine():
  c = ml_collections.ConfigDict(dict(lr=1e-3, warmup_steps=10, num_steps=110, end_lr_factor=0.1))
  lr = optim.learning_rate(c)
  np.testing.assert_allclose([lr(0), lr(5), lr(10), lr(60), lr(110)],
                             [0.0, 5e-4, 1e-3, 0.55e-3, 1e-4], rtol=1e-5)


def test_optimizer_clips_and_skips_decay_on_biases_and_scales():
  c = ml_collections.ConfigDict(dict(lr=1.0, warmup_steps=0, num_steps=10, end_lr_factor=1.0,
                                     weight_decay=0.5, b1=0.0, b2=0.0, eps=1e-12, clip_norm=1.0))
  tx = optim.optimizer(c)
  # A scanned stack of 3 layers: its biases and norm scales are 2-D, and still not decayed.
  params = {"w": jnp.ones((2, 2)), "b": jnp.ones((2,)),
            "layers": {"dense": {"kernel": jnp.ones((3, 2, 2)), "bias": jnp.ones((3, 2))},
                       "norm": {"scale": jnp.ones((3, 2))}}}
  grads = jax.tree.map(jnp.zeros_like, params)
  updates, _ = tx.update(grads, tx.init(params), params)
  np.testing.assert_allclose(updates["w"], -0.5 * np.ones((2, 2)))  # decoupled decay only
  np.testing.assert_allclose(updates["layers"]["dense"]["kernel"], -0.5 * np.ones((3, 2, 2)))
  for no_decay in (updates["b"], updates["layers"]["dense"]["bias"],
                   updates["layers"]["norm"]["scale"]):
    np.testing.assert_array_equal(no_decay, np.zeros_like(no_decay))


def test_optimizer_leaves_frozen_params_alone():
  """Frozen params get no update, not even AdamW's decoupled weight decay; the rest train."""
  c = ml_collections.ConfigDict(dict(lr=1.0, warmup_steps=0, num_steps=10, end_lr_factor=1.0,
                                     weight_decay=0.5, b1=0.0, b2=0.0, eps=1e-12, clip_norm=1.0,
                                     frozen=("encoder",)))
  tx = optim.optimizer(c)
  params = {"encoder": {"w": jnp.ones((2, 2))}, "decoder": {"w": jnp.ones((2, 2))}}
  grads = jax.tree.map(jnp.ones_like, params)
  updates, _ = tx.update(grads, tx.init(params), params)
  np.testing.assert_array_equal(updates["encoder"]["w"], np.zeros((2, 2)))
  assert (np.asarray(updates["decoder"]["w"]) < 0).all()


def test_ema_update_and_warmup():
  e = ema.ema_update({"a": jnp.zeros(3)}, {"a": jnp.ones(3)}, 0.9)
  np.testing.assert_allclose(e["a"], 0.1 * np.ones(3), rtol=1e-6)
  assert float(ema.ema_decay(0, 0.999)) == pytest.approx(0.1)
  assert float(ema.ema_decay(10**6, 0.999)) == pytest.approx(0.999)
  assert float(ema.ema_decay(0, 0.999, warmup=False)) == pytest.approx(0.999)


# ---- frame masks ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", masks.MASK_TYPES)
def test_frame_masks_each_type(kind):
  probs = {k: float(k == kind) for k in masks.MASK_TYPES}
  m = np.asarray(masks.frame_masks(jax.random.key(0), 64, 9, probs))
  assert m.shape == (64, 9) and set(np.unique(m)) <= {0.0, 1.0}
  assert (m.sum(1) < 9).all()  # something is always generated
  if kind == "none":
    assert (m == 0).all()
  elif kind == "image_head":
    assert (m[:, 0] == 1).all() and (m[:, 1:] == 0).all()
  elif kind == "image_tail":
    assert (m[:, -1] == 1).all() and (m[:, :-1] == 0).all()
  elif kind == "head_tail":
    assert (m[:, 0] == 1).all() and (m[:, -1] == 1).all() and (m == m[:, ::-1]).all()
  elif kind == "extend_head":
    k = m.sum(1).astype(int)
    assert (k >= 1).all() and (k <= 4).all() and all((row[:n] == 1).all() for row, n in zip(m, k))
  else:
    assert 0.1 < m.mean() < 0.5


def test_frame_masks_deterministic_and_checked():
  probs = {k: 1.0 for k in masks.MASK_TYPES}
  a = masks.frame_masks(jax.random.key(3), 16, 9, probs)
  np.testing.assert_array_equal(a, masks.frame_masks(jax.random.key(3), 16, 9, probs))
  with pytest.raises(ValueError, match="mask probabilities"):
    masks.frame_masks(jax.random.key(0), 2, 9, {"none": 1.0})


# ---- configs and the CLI -------------------------------------------------------------------------

def test_config_overrides_parse_types():
  c = config_lib.load(os.path.join(CONFIGS, "moving_digits_vae.py") + ":runlocal")
  assert c.model.base_dim == 4
  rest, overrides = config_lib.split_overrides(
      ["--workdir", "w", "--config.optim.lr=3e-4", "--config.model.dim_mult", "(1, 2)",
       "--config.ema_warmup=false", "--config.num_steps=7"])
  assert rest == ["--workdir", "w"]
  config_lib.apply_overrides(c, overrides)
  assert (c.optim.lr, c.model.dim_mult, c.ema_warmup) == (3e-4, (1, 2), False)
  assert c.optim.num_steps == 7  # a reference to num_steps follows it
  config_lib.apply_overrides(c, [("model.base_dim", "None")])
  assert c.model.base_dim is None
  with pytest.raises(ValueError, match="no field 'optim.nope'"):
    config_lib.apply_overrides(c, [("optim.nope", "1")])
  with pytest.raises(ValueError, match="batch_size"):
    config_lib.apply_overrides(c, [("batch_size", "eight")])


def test_cli_print_config_with_overrides(capsys):
  from jaxgen import cli
  path = os.path.join(CONFIGS, "moving_digits_t2v.py") + ":runlocal"
  assert cli.main(["train", "--config", path, "--workdir", "unused", "--print-config",
                   "--config.dit.num_layers=3", "--config.sampling.sampler", "flow_euler"]) == 0
  out = capsys.readouterr().out
  assert "num_layers: 3" in out and "sampler: flow_euler" in out
  assert cli.main(["train", "--config", "missing.py", "--workdir", "w"]) == 2


def test_cli_suggests_tcmalloc_on_the_cpu_only_without_it():
  from jaxgen.train import cli as train_cli
  glibc = "7f00-7f01 r-xp 0 08:01 1 /usr/lib/x86_64-linux-gnu/libc.so.6\n"
  tcmalloc = glibc + "7f02-7f03 r-xp 0 08:01 2 /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4\n"
  assert "LD_PRELOAD=libtcmalloc_minimal.so.4" in train_cli.tcmalloc_hint("cpu", glibc)
  assert train_cli.tcmalloc_hint("cpu", tcmalloc) is None
  assert train_cli.tcmalloc_hint("gpu", glibc) is None


@pytest.mark.parametrize("name", sorted(f for f in os.listdir(CONFIGS)
                                        if f.startswith("moving_digits") and f.endswith(".py")))
@pytest.mark.parametrize("arg", ["", "runlocal"])
def test_experiment_configs_make_their_tasks(name, arg):
  """Every experiment config loads, and its task accepts it (batch splits, experts, masks)."""
  from jaxgen.train import tasks
  path = os.path.join(CONFIGS, name) + (f":{arg}" if arg else "")
  config = config_lib.load(path)
  assert tasks.make(config).config is config


# ---- the VAE task, the loop, checkpoints and resume ----------------------------------------------

def test_fast_conv_matches_the_module():
  task = MockVAETask(_vae_config())
  x = to_unit_range(jnp.asarray(np.stack([e["video"] for e in _mock_source(2)])))
  params = nn.unbox(task.init(jax.random.key(0), {"video": x}))
  model = task.model
  reference = jax.jit(lambda p: model.apply({"params": p}, x, clip=False))(params)

  @jax.jit
  def fast_reconstruction(p):
    with fast_conv.causal_conv_as_2d():
      mean, _ = model.apply({"params": p}, x, method=vae.encode_unrolled)
      return model.apply({"params": p}, mean, method=vae.decode_unrolled)
  fast = fast_reconstruction(params)
  assert float(jnp.linalg.norm(fast - reference) / jnp.linalg.norm(reference)) < 1e-5


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
  """A 4-step VAE run straight through, then the same run stopped at step 2 and resumed."""
  config = _vae_config()
  straight = str(tmp_path_factory.mktemp("straight"))
  resumed = str(tmp_path_factory.mktemp("resumed"))
  task = MockVAETask(config)
  full = loop.train(config, straight, task=task, progress=False)
  first = loop.train(config, resumed, task=task, progress=False, stop_at=2)
  second = loop.train(config, resumed, task=task, progress=False)
  return config, straight, resumed, full, first, second


def test_killed_run_resumes_from_its_async_checkpoint(vae_run, tmp_path):
  """A run 'killed' after step 4: its workdir as it was, minus the last checkpoint. Checkpoint 2
  was saved asynchronously while steps 3-4 ran on donated buffers; resuming from it must redo
  steps 3-4 exactly."""
  config, straight, _, full, _, _ = vae_run
  killed = str(tmp_path / "killed")
  shutil.copytree(straight, killed)
  shutil.rmtree(os.path.join(killed, "checkpoints", "4"))
  result = loop.train(config, killed, task=MockVAETask(config), progress=False)
  assert result["resumed_from"] == 2
  assert ([r["loss"] for r in loop.read_metrics(killed)]
          == [r["loss"] for r in loop.read_metrics(straight)])
  for x, y in zip(jax.tree.leaves(full["state"]), jax.tree.leaves(result["state"])):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_train_step_writes_metrics_plots_and_checkpoints(vae_run):
  config, straight, _, full, _, _ = vae_run
  rows = loop.read_metrics(straight)
  assert [r["step"] for r in rows] == [1, 2, 3, 4]
  for key in ("loss", "l1", "kl", "psnr", "grad_norm", "lr", "steps_per_s", "examples_per_s"):
    assert np.isfinite(rows[-1][key])
  assert int(full["state"].step) == 4
  assert sorted(os.listdir(os.path.join(straight, "checkpoints"))) == ["2", "4"]
  for name in ("loss.png", "samples.png"):
    assert os.path.getsize(os.path.join(straight, name)) > 0


def test_resume_continues_the_same_loss_curve(vae_run):
  _, straight, resumed, full, first, second = vae_run
  assert first["resumed_from"] == 0 and second["resumed_from"] == 2
  a = [r["loss"] for r in loop.read_metrics(straight)]
  b = [r["loss"] for r in loop.read_metrics(resumed)]
  assert a == b  # bit for bit: same batches (loader by step) and keys (fold_in(key, step))
  for x, y in zip(jax.tree.leaves(full["state"]), jax.tree.leaves(second["state"])):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_restore_params_from_a_run(vae_run):
  _, straight, _, full, _, _ = vae_run
  params = ckpt_lib.restore_params(straight)
  for x, y in zip(jax.tree.leaves(params), jax.tree.leaves(full["state"].ema_params)):
    np.testing.assert_array_equal(x, np.asarray(y))


def test_init_from_starts_a_run_from_another_runs_weights(vae_run, tmp_path):
  """Stage-wise training: a new run starts from another's params and EMA params, at step 0 with
  a fresh optimizer; once it has checkpoints of its own, it resumes from those."""
  config, straight, _, full, _, _ = vae_run
  config = ml_collections.ConfigDict(config.to_dict())
  config.init_from = straight
  workdir = str(tmp_path / "stage2")
  fresh = loop.train(config, workdir, task=MockVAETask(config), progress=False, stop_at=0)
  assert int(fresh["state"].step) == 0
  for name in ("params", "ema_params"):
    for x, y in zip(jax.tree.leaves(getattr(fresh["state"], name)),
                    jax.tree.leaves(getattr(full["state"], name))):
      np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  trained = loop.train(config, workdir, task=MockVAETask(config), progress=False, stop_at=2)
  config.init_from = str(tmp_path / "elsewhere")  # ignored: the run resumes from its own step 2
  resumed = loop.train(config, workdir, task=MockVAETask(config), progress=False, stop_at=2)
  assert resumed["resumed_from"] == 2
  for x, y in zip(jax.tree.leaves(trained["state"]), jax.tree.leaves(resumed["state"])):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))

  with pytest.raises(ValueError, match=r"init_from=.*elsewhere.*has no checkpoint; expected the "
                                       r"workdir of a `jaxgen train` run, a text-to-video bundle "
                                       r"directory .* or a shipped model \(moving-digits"):
    loop.train(config, str(tmp_path / "other"), task=MockVAETask(config), progress=False,
               stop_at=0)
  assert not os.path.exists(tmp_path / "elsewhere")
  config.init_from = straight
  config.model.base_dim = 8
  with pytest.raises(ValueError, match=r"init_from=.*: param decoder/conv_in/bias has shape "
                                       r"\(8,\) from the checkpoint; the model's config expects "
                                       r"\(16,\)"):
    loop.train(config, str(tmp_path / "wider"), task=MockVAETask(config), progress=False,
               stop_at=0)


def test_frozen_params_keep_the_sources_ema_weights(vae_run, tmp_path):
  """Fine-tuning a VAE's decoder: the frozen encoder takes the source's EMA weights (those its
  latents came from) as params and EMA, and keeps them bit for bit; the decoder trains."""
  config, straight, _, full, _, _ = vae_run
  config = ml_collections.ConfigDict(config.to_dict())
  config.init_from = straight
  config.optim.frozen = ("encoder", "quant_conv")
  tuned = loop.train(config, str(tmp_path / "decoder"), task=MockVAETask(config),
                     progress=False, stop_at=2)["state"]
  source = full["state"].ema_params
  for name in ("encoder", "quant_conv"):
    for tree in (tuned.params, tuned.ema_params):
      for x, y in zip(jax.tree.leaves(tree[name]), jax.tree.leaves(source[name])):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  assert any(not np.array_equal(x, y) for x, y in zip(
      jax.tree.leaves(tuned.params["decoder"]), jax.tree.leaves(full["state"].params["decoder"])))

  config.optim.frozen = ("encoder", "text_encoder")
  with pytest.raises(ValueError, match=r"optim.frozen: \['text_encoder'\] are not params of "
                                       r"this task; expected names among \['decoder', 'encoder'"):
    loop.train(config, str(tmp_path / "typo"), task=MockVAETask(config), progress=False,
               stop_at=0)


# ---- the text-to-video task ----------------------------------------------------------------------

class MockT2VTask(t2v.T2VTask):
  """The t2v task on random in-memory latents [3, 2, 2, 4] with captions."""

  def data_source(self, split: str):
    rng = np.random.default_rng(0)
    items = _mock_source(8)
    mean = rng.normal(size=(8, 3, 2, 2, 4)).astype(np.float16)
    return latents_lib.LatentSource({"mean": mean, "std": np.full_like(mean, 0.1)}, items)

  stats = ((0.0,) * 4, (1.0,) * 4)


def _t2v_config() -> ml_collections.ConfigDict:
  import sys
  sys.path.insert(0, CONFIGS)
  import moving_digits_t2v  # pylint: disable=g-import-not-at-top
  c = moving_digits_t2v.get_config("runlocal")
  c.update(dict(num_steps=2, batch_size=2, log_every=1, checkpoint_every=2))
  c.mesh.data = 1
  c.vae.model.update(dict(base_dim=4, z_dim=4, dim_mult=(1, 2), temporal_downsample=(True,)))
  c.text.update(dict(width=16, mlp_dim=32, num_layers=1, num_heads=2))
  c.dit.update(dict(num_layers=1, num_heads=2, head_dim=8, ffn_dim=32, freq_dim=16))
  c.num_samples = 0
  c.data.train_size = 8  # MockT2VTask's examples, from which the curriculum picks
  c.boundary_ratio_2, c.text_encoder_experts = None, ("transformer",)  # two experts, one each
  return c


def test_t2v_curriculum_is_the_examples_with_curriculum_digits():
  task = MockT2VTask(_t2v_config())
  subset, steps, rows = task.curriculum()
  assert rows is None  # every row
  source = task.data_source("train")
  assert steps == task.config.curriculum_steps > task.config.num_steps  # the test run's every step
  np.testing.assert_array_equal(
      subset, [i for i in range(len(source)) if source[i]["num_objects"] == 1])
  task.config.curriculum_digits = 2
  subset, _, _ = task.curriculum()
  np.testing.assert_array_equal(
      subset, [i for i in range(len(source)) if source[i]["num_objects"] == 2])
  task.config.curriculum_digits = 3
  with pytest.raises(ValueError, match="curriculum_digits=3; expected 1 to 2"):
    task.curriculum()
  task.config.curriculum_digits = 1
  task.config.curriculum_experts = ("transformer_2",)  # the low-noise expert: the second row
  np.testing.assert_array_equal(task.curriculum()[2], [1])
  config = _t2v_config()
  config.curriculum_experts = "transformer"  # as --config.curriculum_experts=transformer
  np.testing.assert_array_equal(MockT2VTask(config).curriculum()[2], [0])
  task.config.curriculum_experts = ("transformer_3",)
  with pytest.raises(ValueError, match=r"curriculum_experts=\('transformer_3',\); expected some"):
    task.curriculum()
  task.config.curriculum_steps = 0
  assert task.curriculum() is None


def test_t2v_expert_rows_are_videos_then_images_by_share():
  config = _t2v_config()
  config.update(dict(batch_size=10, video_batch_size=4))
  config.expert_shares = ml_collections.ConfigDict({"videos": (3, 1), "images": (0, 1)})
  rows = MockT2VTask(config).expert_rows()
  np.testing.assert_array_equal(rows["transformer"], [0, 1, 2])  # videos 0-3, images 4-9
  np.testing.assert_array_equal(rows["transformer_2"], [3, 4, 5, 6, 7, 8, 9])


def test_t2v_train_step_updates_text_encoder_and_dit(tmp_path):
  config = _t2v_config()
  config.boundary_ratio_2, config.text_encoder_experts = 0.4, ("transformer", "transformer_2")
  with pytest.raises(ValueError, match="batch_size=2; expected at least one example per"):
    MockT2VTask(config)
  config.batch_size = 3  # three experts, one example each
  config.curriculum_steps = 0  # two of the 8 examples have one digit: fewer than a batch
  task = MockT2VTask(config)
  result = loop.train(config, str(tmp_path), task=task, progress=False)
  rows = loop.read_metrics(str(tmp_path))
  assert [r["step"] for r in rows] == [1, 2] and all(np.isfinite(r["loss"]) for r in rows)
  state = result["state"]
  parts = ("text_encoder", "transformer", "transformer_2", "transformer_3")
  assert set(state.params) == set(parts)
  assert state.params["transformer"]["patch_embed"]["proj"]["kernel"].shape[0] == 4 * (2 * 4 + 1)
  batch = _t2v_batch(task, 3)
  grads = jax.jit(jax.grad(lambda p: task.loss(p, batch, jax.random.key(1))[0]))(state.params)
  for part in parts:
    assert float(sum(jnp.sum(jnp.abs(g)) for g in jax.tree.leaves(grads[part]))) > 0
  config.text_encoder_experts = ("transformer_4",)
  with pytest.raises(ValueError, match="text_encoder_experts=\\('transformer_4',\\); expected"):
    MockT2VTask(config)


def _t2v_batch(task, size: int = 2) -> dict:
  source = task.data_source("train")
  items = [source[i] for i in range(size)]
  tokens = task.tokenizer([str(e["caption"]) for e in items], padding="max_length",
                          max_length=vocab.MAX_LENGTH, return_tensors="np")
  return {"latents": jnp.asarray(np.stack([e["latents"] for e in items])),
          "latents_std": jnp.asarray(np.stack([e["latents_std"] for e in items])),
          "input_ids": jnp.asarray(tokens["input_ids"], jnp.int32),
          "attention_mask": jnp.asarray(tokens["attention_mask"], jnp.int32)}


class SampledT2VTask(MockT2VTask):
  """MockT2VTask on latents of the bundle's 32x32 frames, decoded by a random tiny VAE."""

  def data_source(self, split: str):
    mean = np.random.default_rng(0).normal(size=(8, 3, 16, 16, 4)).astype(np.float16)
    return latents_lib.LatentSource({"mean": mean, "std": np.full_like(mean, 0.1)},
                                    _mock_source(8))

  @property
  def vae_params(self):
    module = vae.VAETask(self.config.vae).model
    return nn.unbox(module.init(jax.random.key(3), jnp.zeros((1, 5, 32, 32, 3)))["params"])


def _t2v_bundle(config, path) -> tuple[str, dict]:
  """A bundle of a freshly initialised SampledT2VTask: (its path, its params but the VAE's)."""
  task = SampledT2VTask(config)
  params = nn.unbox(task.init(jax.random.key(5), _t2v_batch(task)))
  return bundle.save_bundle(path, task.model, {**params, "vae": task.vae_params},
                            task.tokenizer), params


def test_init_from_a_bundle_fine_tunes_its_weights(tmp_path):
  """A text-to-video bundle's weights start a run as its params and EMA params (not the VAE)."""
  config = _t2v_config()
  config.init_from, params = _t2v_bundle(config, tmp_path / "bundle")
  state = loop.train(config, str(tmp_path / "run"), task=SampledT2VTask(config), progress=False,
                     stop_at=0)["state"]
  for got in (state.params, state.ema_params):
    assert set(got) == set(params)
    for x, y in zip(jax.tree.leaves(got), jax.tree.leaves(params)):
      np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  assert load.bundle_dir("moving-digits") == os.path.join(load.WEIGHTS_DIR, "moving-digits")


def test_init_fresh_keeps_an_experts_initialisation(tmp_path):
  """init_fresh params start afresh: e.g. an expert whose patch size the next stage changes."""
  config = _t2v_config()
  path, params = _t2v_bundle(config, tmp_path / "bundle")
  config.expert_dit = ml_collections.ConfigDict({"transformer": {"patch_size": (1, 1, 1)}})
  fresh = loop.train(config, str(tmp_path / "fresh"), task=SampledT2VTask(config),
                     progress=False, stop_at=0)["state"]
  config.init_from = path
  with pytest.raises(ValueError, match="param transformer/patch_embed/proj/kernel has shape"):
    loop.train(config, str(tmp_path / "strict"), task=SampledT2VTask(config), progress=False,
               stop_at=0)
  config.init_fresh = ("transformer",)
  state = loop.train(config, str(tmp_path / "run"), task=SampledT2VTask(config), progress=False,
                     stop_at=0)["state"]
  for got in (state.params, state.ema_params):
    for name, want in (("transformer", fresh.params), ("transformer_2", params),
                       ("text_encoder", params)):
      for x, y in zip(jax.tree.leaves(got[name]), jax.tree.leaves(want[name]), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  config.init_fresh = ("transformer_9",)
  with pytest.raises(ValueError, match=r"init_fresh: \['transformer_9'\] are not params"):
    loop.train(config, str(tmp_path / "typo"), task=SampledT2VTask(config), progress=False,
               stop_at=0)


def test_expert_dit_sets_one_experts_fields():
  config = _t2v_config()
  config.expert_dit = ml_collections.ConfigDict({"transformer_2": {"patch_size": (1, 1, 1)}})
  model = MockT2VTask(config).model
  assert model.transformer.patch_size == (1, 2, 2) and model.transformer_2.patch_size == (1, 1, 1)
  assert native.config_from_json(native.config_to_json(model)) == model  # as a bundle keeps it
  config.expert_dit = ml_collections.ConfigDict({"transformer_4": {"patch_size": (1, 1, 1)}})
  with pytest.raises(ValueError, match=r"expert_dit names \['transformer_4'\]; expected"):
    MockT2VTask(config)
  config.expert_dit = ml_collections.ConfigDict({"transformer": {"patch": 1}})
  with pytest.raises(ValueError, match=r"expert_dit.transformer=\{'patch': 1\}; expected fields"):
    MockT2VTask(config)


@pytest.mark.parametrize("video_batch_size", [None, 0])
def test_t2v_samples_are_videos_or_stills(video_batch_size):
  """samples.png shows videos, or first frames for an image model (video_batch_size=0)."""
  config = _t2v_config()
  config.video_batch_size = video_batch_size
  task = SampledT2VTask(config)
  batch = _t2v_batch(task)
  params = nn.unbox(task.init(jax.random.key(0), batch))
  samples = jax.jit(task.samples)(params, batch, jax.random.key(1))  # jitted, as the loop runs it
  frames = 5 if video_batch_size is None else 1  # 3 latent frames: 1 + 2·2 frames
  assert samples.shape == (2, 2, frames, 32, 32, 3) and samples.dtype == jnp.uint8


class BumpedT2VTask(MockT2VTask):
  """Adds `bump` to the transformers' predictions in the first latent frame."""
  bump = 0.0

  def expert(self, params, name):
    base = super().expert(params, name)
    return lambda x, t, c: base(x, t, c).at[:, 0].add(self.bump)


@pytest.mark.parametrize("kind,changes", [("image_head", False), ("none", True)])
def test_t2v_loss_counts_only_generated_frames(kind, changes):
  config = _t2v_config()
  config.masks = {k: float(k == kind) for k in masks.MASK_TYPES}
  task = BumpedT2VTask(config)
  batch = _t2v_batch(task)
  params = nn.unbox(task.init(jax.random.key(0), batch))

  @jax.jit
  def loss(bump):
    task.bump = bump  # traced: one program for both values
    return task.loss(params, batch, jax.random.key(2))[0]
  base, bumped = float(loss(0.0)), float(loss(5.0))
  assert (bumped != pytest.approx(base, rel=1e-6)) == changes


def test_t2v_images_train_on_first_latent_frames():
  """Past video_batch_size, examples train as images: their first latent frame, never given."""
  config = _t2v_config()
  config.batch_size = 4
  config.masks = {k: float(k == "image_head") for k in masks.MASK_TYPES}  # videos: frame 0 given
  batch = _t2v_batch(BumpedT2VTask(config), 4)
  params = nn.unbox(BumpedT2VTask(config).init(jax.random.key(0), batch))

  def changes(video_batch_size):
    config.video_batch_size = video_batch_size
    task = BumpedT2VTask(config)

    @jax.jit
    def loss(bump):
      task.bump = bump
      return task.loss(params, batch, jax.random.key(2))[0]
    return float(loss(5.0)) != pytest.approx(float(loss(0.0)), rel=1e-6)
  assert not changes(None) and changes(2) and changes(0)
  for bad in (5, 1, 3):  # more than the batch; fewer videos or images than the 2 experts
    config.video_batch_size = bad
    with pytest.raises(ValueError, match=f"video_batch_size={bad} with batch_size=4"):
      MockT2VTask(config)


class RecordingT2VTask(MockT2VTask):
  """Records (expert, examples, latent frames) of each expert call as the loss is traced."""

  def expert(self, params, name):
    base = super().expert(params, name)

    def apply(x, t, c):
      self.calls.append((name, x.shape[0], x.shape[1]))
      return base(x, t, c)
    return apply


def test_t2v_expert_shares_split_videos_and_images():
  assert list(t2v.expert_edges(48, (4, 1, 1))) == [0, 32, 40, 48]
  assert list(t2v.expert_edges(40, (0, 1, 1))) == [0, 0, 20, 40]
  assert list(t2v.expert_edges(7, (1, 1, 1))) == list(np.linspace(0, 7, 4).round())
  config = _t2v_config()
  config.batch_size, config.video_batch_size = 5, 3
  config.expert_shares = ml_collections.ConfigDict({"videos": (2, 1), "images": (0, 1)})
  task = RecordingT2VTask(config)
  task.calls = []
  batch = _t2v_batch(task, 5)
  task.loss(nn.unbox(task.init(jax.random.key(0), batch)), batch, jax.random.key(1))
  assert task.calls == [("transformer", 2, 3), ("transformer_2", 1, 3), ("transformer_2", 2, 1)]
  config.expert_shares.images = (1,)
  with pytest.raises(ValueError, match=r"expert_shares.images=\(1,\); expected 2 non-negative"):
    MockT2VTask(config)
  config.expert_shares.images, config.expert_shares.videos = (0, 1), (9, 1)
  with pytest.raises(ValueError, match=r"video_batch_size=3 with batch_size=5 gives the experts "
                                       r"\('transformer', 'transformer_2'\) \[3, 0\] videos"):
    MockT2VTask(config)
  config.expert_shares.videos = (0, 1)  # the images too give `transformer` none
  with pytest.raises(ValueError, match=r"gives \['transformer'\] no examples; expected a share"):
    MockT2VTask(config)
