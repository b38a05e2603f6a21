"""Imagen Video cascade: upsampling, noise-conditioning augmentation, TSR/SSR stages, the pipeline
and the stage training task, on tiny random models."""

import argparse
import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.diffusion import augment
from jaxgen.diffusion import schedules
from jaxgen.pipelines import cascade as cascade_lib
from jaxgen.pipelines import upsample


# ---------------------------------------------------------------- upsampling


def test_repeat_frames_is_exact():
  x = jnp.arange(2 * 3 * 1 * 1 * 2, dtype=jnp.float32).reshape(2, 3, 1, 1, 2)
  y = np.asarray(upsample.repeat_frames(x, 2))
  assert y.shape == (2, 6, 1, 1, 2)
  np.testing.assert_array_equal(y[:, 0::2], x)
  np.testing.assert_array_equal(y[:, 1::2], x)


def test_bilinear_is_exact_on_known_inputs():
  # Half-pixel centres: [0, 1] -> [0, 1/4, 3/4, 1]; a linear ramp stays a ramp inside, edges clamp.
  x = jnp.array([0.0, 1.0])[None, None, :, None, None] * jnp.ones((1, 1, 1, 2, 1))
  y = np.asarray(upsample.bilinear(x, 2))[0, 0, :, 0, 0]
  np.testing.assert_array_equal(y, [0.0, 0.25, 0.75, 1.0])
  ramp = jnp.arange(4.0)[None, None, None, :, None] * jnp.ones((1, 1, 4, 1, 1))
  y = np.asarray(upsample.bilinear(ramp, 4))[0, 0, 0, :, 0]
  expected = np.clip((np.arange(16) + 0.5) / 4 - 0.5, 0, 3)
  np.testing.assert_allclose(y, expected, rtol=0, atol=1e-6)
  # A constant image stays constant; the matrices' rows sum to one.
  np.testing.assert_allclose(upsample.bilinear(jnp.full((1, 1, 3, 5, 2), 0.7), 4), 0.7, atol=1e-6)


def test_bilinear_matches_torch():
  torch = pytest.importorskip("torch")
  x = np.random.default_rng(0).normal(size=(2, 3, 5, 7, 4)).astype(np.float32)
  for f in (2, 4):
    ref = torch.nn.functional.interpolate(
        torch.from_numpy(x.reshape(6, 5, 7, 4).transpose(0, 3, 1, 2)), scale_factor=f,
        mode="bilinear", align_corners=False).numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(upsample.bilinear(x, f).reshape(ref.shape), ref, atol=1e-5)


def test_downsample_inverts_upsample_of_constant_blocks():
  x = jnp.asarray(np.random.default_rng(1).normal(size=(1, 2, 3, 3, 3)), jnp.float32)
  np.testing.assert_allclose(upsample.downsample(upsample.repeat_frames(x, 2), 2, 1), x)
  blocks = jnp.repeat(jnp.repeat(x, 2, axis=2), 2, axis=3)  # nearest ×2
  np.testing.assert_allclose(upsample.downsample(blocks, 1, 2), x, atol=1e-6)
  with pytest.raises(ValueError, match="multiples"):
    upsample.downsample(x, 1, 2)


# ---------------------------------------------------------------- augmentation


def test_augment_levels():
  x = jnp.ones((3, 2, 4, 4, 3))
  key = jax.random.key(0)
  s = schedules.LogSNRSchedule()
  np.testing.assert_array_equal(augment.augment(key, x, 0.0, s), x)  # level 0: no noise at all
  y = augment.augment(key, x, jnp.array([0.0, 0.3, 1.0]), s)
  np.testing.assert_array_equal(y[0], x[0])
  assert 0.0 < float(jnp.std(y[1])) < float(jnp.std(y[2]))
  alpha, sigma = augment.alpha_sigma(s, jnp.array([0.5]))
  np.testing.assert_allclose(alpha**2 + sigma**2, 1.0, atol=1e-6)
  levels = augment.sample_levels(key, 1000, 0.5)
  assert float(levels.min()) >= 0.0 and float(levels.max()) <= 0.5
  with pytest.raises(ValueError, match="max_level"):
    augment.sample_levels(key, 4, 1.5)


# ---------------------------------------------------------------- stages and the cascade


@pytest.fixture(scope="module")
def tsr():
  return cascade_lib.random_tiny_stage(2, 1, seed=1, num_steps=2)


@pytest.fixture(scope="module")
def ssr():
  return cascade_lib.random_tiny_stage(1, 2, seed=2, num_steps=2)


def _stage_inputs(n=1):
  from jaxgen.data import vocab
  tok = vocab.build_tokenizer()
  enc = tok(["a red 7 moving right"] * n, padding="max_length", max_length=vocab.MAX_LENGTH,
            return_tensors="np")
  ids, mask = jnp.asarray(enc["input_ids"]), jnp.asarray(enc["attention_mask"])
  return ids, mask


def test_aug_level_reaches_the_network(ssr):
  from jaxgen.models.superres import SuperResDiT
  config, params = ssr
  net = SuperResDiT(config.model)
  x = jax.random.normal(jax.random.key(0), (2, 2, 8, 8, 3))
  low = jax.random.normal(jax.random.key(1), x.shape)
  context = jax.random.normal(jax.random.key(2), (2, 5, 32))
  apply = jax.jit(lambda level: net.apply({"params": params["transformer"]}, x,
                                          jnp.full((2,), 500.0), low, level, context))
  a, b = apply(jnp.zeros((2,))), apply(jnp.full((2,), 0.5))
  assert a.shape == x.shape
  assert float(jnp.linalg.norm(a - b) / jnp.linalg.norm(a)) > 1e-3


def test_tsr_is_told_which_frames_were_given(tsr, ssr):
  """TSR's extra input channel marks the lower stage's frames (1) apart from their repeats (0)."""
  from jaxgen.models.superres import SuperResConfig, SuperResDiT, given_frames
  np.testing.assert_array_equal(given_frames(6, 2), [1, 0, 1, 0, 1, 0])
  config, params = tsr
  assert (config.model.dit.in_channels, ssr[0].model.dit.in_channels) == (7, 6)
  with pytest.raises(ValueError, match="in/out channels 6/3; expected 7/3"):
    SuperResConfig(ssr[0].model.dit, temporal_factor=2)
  net = SuperResDiT(config.model)
  x = jax.random.normal(jax.random.key(0), (1, 4, 8, 8, 3))
  context = jax.random.normal(jax.random.key(2), (1, 5, 32))
  apply = jax.jit(lambda p: net.apply({"params": p}, x, jnp.full((1,), 500.0), x,
                                      jnp.zeros((1,)), context))
  # Without the given-frame channel's weights the output changes: the channel reaches the network.
  kernel = params["transformer"]["patch_embed"]["proj"]["kernel"]
  blind = kernel.reshape(4, 7, -1).at[:, 6].set(0.0).reshape(kernel.shape)
  other = dict(params["transformer"])
  other["patch_embed"] = {"proj": {**other["patch_embed"]["proj"], "kernel": blind}}
  a, b = apply(params["transformer"]), apply(other)
  assert float(jnp.linalg.norm(a - b) / jnp.linalg.norm(a)) > 1e-3
  # Absolute sin-cos positions (config.dit.pos_embed) add no parameters but reach the output.
  sincos = dataclasses.replace(config.model, dit=dataclasses.replace(config.model.dit,
                                                                     pos_embed="sincos"))
  c = SuperResDiT(sincos).apply({"params": params["transformer"]}, x, jnp.full((1,), 500.0), x,
                                jnp.zeros((1,)), context)
  assert float(jnp.linalg.norm(a - c) / jnp.linalg.norm(a)) > 1e-3


def test_stage_output_shapes_and_aug_level_changes_samples(tsr, ssr):
  ids, mask = _stage_inputs(2)
  low = jnp.zeros((2, 3, 8, 8, 3))
  for (config, params), shape in ((tsr, (2, 6, 8, 8, 3)), (ssr, (2, 3, 16, 16, 3))):
    out = cascade_lib.run_stage(config, False, params, low, ids, mask, ids, mask, jax.random.key(0))
    assert out.shape == shape
  config, params = ssr
  other = dataclasses.replace(config, aug_level=0.6)
  a = cascade_lib.run_stage(config, False, params, low, ids, mask, ids, mask, jax.random.key(0))
  b = cascade_lib.run_stage(other, False, params, low, ids, mask, ids, mask, jax.random.key(0))
  assert float(jnp.abs(a - b).max()) > 1e-3


def test_residual_scale_divides_the_sampled_residual(ssr):
  """Stages diffuse the residual over naive upsampling times residual_scale; sampling undoes it."""
  ids, mask = _stage_inputs(1)
  low = jnp.zeros((1, 2, 8, 8, 3))  # naive upsampling is zero: the output is the residual
  config, params = ssr
  run = lambda c: np.asarray(cascade_lib.run_stage(c, False, params, low, ids, mask, ids, mask,
                                                   jax.random.key(0)))
  a, b = run(config), run(dataclasses.replace(config, residual_scale=4.0))
  inside = np.abs(a) < 0.99  # away from the [-1, 1] clip
  assert inside.mean() > 0.5
  np.testing.assert_allclose(b[inside], a[inside] / 4.0, atol=1e-5)
  with pytest.raises(ValueError, match="residual_scale=0"):
    dataclasses.replace(config, residual_scale=0)


def test_cascade_shapes(tsr, ssr):
  from jaxgen.pipelines.load import random_tiny
  from jaxgen.pipelines.text_to_video import TextToVideo
  base = TextToVideo(*random_tiny())
  config = cascade_lib.CascadeConfig((tsr[0], ssr[0]), num_frames=5, base_num_steps=2)
  cascade = cascade_lib.Cascade(config, base, [tsr[1], ssr[1]])
  assert cascade.output_shape() == (10, 64, 64)
  videos = cascade("a red 7 moving right", seed=0)
  assert videos.shape == (1, 10, 64, 64, 3) and videos.dtype == np.uint8
  assert set(cascade.times) == {"base", "stage 0 (tsr)", "stage 1 (ssr)"}
  # Any order: SSR then TSR gives the same final shape.
  swapped = cascade_lib.CascadeConfig((ssr[0], tsr[0]), num_frames=5)
  assert swapped.output_shape(5, 32, 32) == (10, 64, 64)


def test_misfit_stage_gives_a_clear_error(tsr, ssr):
  config, _ = tsr
  # A temporal patch of 4 cannot tile 2·5 = 10 frames.
  bad = dataclasses.replace(config, model=dataclasses.replace(
      config.model, dit=dataclasses.replace(config.model.dit, patch_size=(4, 2, 2))))
  with pytest.raises(ValueError, match=r"stage 0 \(tsr.*\[5, 32, 32\].*\[10, 32, 32\].*\[4, 2, 2\]"):
    cascade_lib.CascadeConfig((bad,)).output_shape(5, 32, 32)
  trained = dataclasses.replace(ssr[0], input_shape=(10, 16, 16))
  with pytest.raises(ValueError, match=r"stage 1 \(ssr\) was trained on .*\[10, 16, 16\].*"
                                       r"\[10, 32, 32\]"):
    cascade_lib.CascadeConfig((config, trained)).output_shape(5, 32, 32)
  from jaxgen.models.superres import SuperResConfig
  with pytest.raises(ValueError, match="temporal_factor=3"):
    SuperResConfig(config.model.dit, temporal_factor=3)


def test_stage_bundle_round_trip(tmp_path, tsr):
  from jaxgen.data import vocab
  config, params = tsr
  path = cascade_lib.save_stage(tmp_path / "tsr", config, params, vocab.build_tokenizer())
  loaded, loaded_params = cascade_lib.load_stage(path)
  assert loaded == config
  umask = os.umask(0)
  os.umask(umask)
  assert os.stat(path).st_mode & 0o777 == 0o777 & ~umask  # not mkdtemp's private 0700
  params_file = os.path.join(path, "params.safetensors")
  assert os.stat(params_file).st_mode & 0o777 == 0o666 & ~umask  # not safetensors' 0600
  jax.tree.map(np.testing.assert_array_equal, loaded_params, jax.tree.map(np.asarray, params))
  with pytest.raises(ValueError, match="stage bundle"):
    cascade_lib.load_stage(tmp_path)
  # A stage directory is not a text-to-video bundle; float64 storage is not offered.
  from jaxgen.pipelines import bundle
  os.rename(os.path.join(path, "stage.json"), os.path.join(path, "model.json"))
  with pytest.raises(ValueError, match="format 'jaxgen-stage' version 2; expected 'jaxgen-bundle'"):
    bundle.load_bundle(path)
  with pytest.raises(ValueError, match="float64"):
    cascade_lib.save_stage(tmp_path / "x", config, params, path, storage_dtype="float64")


def test_stage_evaluation_against_naive_upsampling(tmp_path, tsr):
  """`jaxgen eval --model STAGE_DIR`: the stage and the naive baseline on the same ground truth."""
  from jaxgen.data import vocab
  from jaxgen.eval import cascade as cascade_eval
  from jaxgen.eval import cli
  config, params = tsr
  path = cascade_lib.save_stage(tmp_path / "tsr", config, params, vocab.build_tokenizer())
  assert cascade_lib.stage_dir(str(path)) == str(path) and cascade_lib.stage_dir("nope") is None
  out = tmp_path / "eval.json"
  parser = argparse.ArgumentParser()
  cli.add_arguments(parser)
  assert cli.run(parser.parse_args(["--model", str(path), "--num-videos", "2", "--batch-size",
                                    "2", "--output", str(out)])) == 0
  result = json.loads(out.read_text())
  umask = os.umask(0)
  os.umask(umask)
  assert os.stat(out).st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600
  assert result["kind"] == "tsr" and result["input_shape"] == [17, 32, 32]
  assert result["output_shape"] == [34, 32, 32]
  # Frame repetition of the truth's even frames is already close; an untrained stage is noise.
  assert result["psnr_db"]["naive"] > 15 > result["psnr_db"]["stage"]
  assert result["oracle"]["ground_truth"]["all_attributes_accuracy"] == 1.0
  # The bundle's sampling settings can be overridden for a stage, not for a cascade.
  assert cli.run(parser.parse_args(["--model", str(path), "--num-videos", "2", "--steps", "1",
                                    "--sampler", "ddim", "--aug-level", "0", "--output",
                                    str(out)])) == 0
  result = json.loads(out.read_text())
  assert (result["steps"], result["sampler"], result["aug_level"]) == (1, "ddim", 0.0)
  with pytest.raises(ValueError, match="--steps=3 is not supported with a cascade"):
    cli.run(parser.parse_args(["--model", "moving-digits-cascade", "--steps", "3"]))
  with pytest.raises(ValueError, match="--aug-level=0.2 is not supported with model='moving-di"):
    cli.run(parser.parse_args(["--model", "moving-digits", "--aug-level", "0.2"]))
  with pytest.raises(ValueError, match=r"guidance=\(5.0, 3.0\) is not supported for a stage"):
    cli.run(parser.parse_args(["--model", str(path), "--guidance", "5,3"]))
  with pytest.raises(ValueError, match="--frames=1 is not supported with model="):
    cli.run(parser.parse_args(["--model", str(path), "--frames", "1"]))
  with pytest.raises(ValueError, match="--frames=0 is not supported; expected an integer >= 1"):
    cli.run(parser.parse_args(["--model", "moving-digits", "--frames", "0"]))
  truth = np.zeros((2, 4, 4, 3), np.uint8)
  np.testing.assert_allclose(cascade_eval.psnr(truth + 5, truth), 20 * np.log10(255 / 5))


def test_shipped_cascade_keeps_what_the_base_drew():
  """moving-digits-cascade from the package's weights: 17x32x32 -> 34x32x32 -> 34x64x64, and the
  oracle reads the same objects, colours and directions after every stage."""
  from jaxgen.eval import oracle
  pipe, note = cascade_lib.load_cascade("moving-digits-cascade")
  assert note is None  # the trained stages are installed, not the random stand-ins
  stages = pipe("a red 7 moving right", seed=0, return_stages=True)
  assert [v.shape for v in stages] == [(1, 17, 32, 32, 3), (1, 34, 32, 32, 3), (1, 34, 64, 64, 3)]
  readings = [oracle.read_video(v[0], rate=r) for v, r in zip(stages, (1, 2, 2))]
  seen = [[(r.color, r.direction) for r in reading] for reading in readings]
  assert seen[0] and seen[0] == seen[1] == seen[2]


def test_load_cascade_names():
  with pytest.raises(ValueError, match="moving-digits-cascade"):
    cascade_lib.load_cascade("nope")


# ---------------------------------------------------------------- stage training task


@pytest.mark.parametrize("name", ["tsr", "ssr"])
def test_stage_task_trains_and_samples(name):
  from jaxgen.train import config_lib
  from jaxgen.train.tasks.superres import SuperResTask
  configs = os.path.join(os.path.dirname(__file__), os.pardir, "experiments", "configs")
  config = config_lib.load(os.path.join(configs, f"moving_digits_{name}.py:runlocal"))
  config.dit.num_layers = 1
  config.sampling.num_steps = 2
  task = SuperResTask(config)
  assert task.stage.prediction_type == "v_prediction"
  ids, mask = _stage_inputs(2)
  video = np.random.default_rng(0).integers(0, 256, (2, 3, 8, 8, 3), np.uint8)
  batch = {"video": jnp.asarray(video), "input_ids": ids, "attention_mask": mask}
  x0, low = task.high_and_low(batch["video"])
  tf, sf = (2, 1) if name == "tsr" else (1, 2)
  assert x0.shape == (2, 3 // tf * tf, 8, 8, 3)
  assert low.shape == (2, 3 // tf, 8 // sf, 8 // sf, 3)
  if name == "tsr":  # the same code path compiles for SSR below; once keeps the suite fast
    return
  import flax.linen as nn
  params = nn.meta.unbox(jax.jit(task.init)(jax.random.key(0), batch))
  (loss, aux), grads = jax.jit(jax.value_and_grad(task.loss, has_aux=True))(
      params, batch, jax.random.key(1))
  assert np.isfinite(float(loss)) and 0.0 <= float(aux["aug_level"]) <= config.max_aug_level
  # DiT practice zero-initialises the output layer, so at step 0 only it has a gradient.
  assert float(jnp.abs(grads["transformer"]["proj_out"]["kernel"]).sum()) > 0
  samples = jax.jit(task.samples)(params, batch, jax.random.key(2))
  assert samples.shape == (3,) + x0.shape and samples.dtype == jnp.uint8


def test_init_from_a_stage_bundle_fine_tunes_its_weights(tmp_path):
  """`jaxgen train --config.init_from=STAGE` (a stage bundle directory or a shipped stage):
  its weights start the run as params and EMA params."""
  from jaxgen.train import config_lib
  from jaxgen.train import loop
  from jaxgen.train.tasks.superres import SuperResTask
  configs = os.path.join(os.path.dirname(__file__), os.pardir, "experiments", "configs")
  config = config_lib.load(os.path.join(configs, "moving_digits_ssr.py:runlocal"))
  config.dit.num_layers = 1
  config.num_samples = 0
  config.mesh.data = 1
  first = loop.train(config, str(tmp_path / "first"), task=SuperResTask(config), progress=False,
                     stop_at=0)["state"]
  params = jax.tree.map(lambda x: np.asarray(x) + 1.0, first.params)  # unlike a fresh init
  task = SuperResTask(config)
  config.init_from = cascade_lib.save_stage(tmp_path / "stage", task.stage, params, task.tokenizer)
  state = loop.train(config, str(tmp_path / "run"), task=task, progress=False, stop_at=0)["state"]
  for got in (state.params, state.ema_params):
    jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.asarray, got), params)
  # A shipped stage of another shape is named in the error, not a bare shape mismatch.
  config.init_from = "moving-digits-ssr"
  with pytest.raises(ValueError, match=r"init_from='moving-digits-ssr': param .* has shape"):
    loop.train(config, str(tmp_path / "shipped"), task=task, progress=False, stop_at=0)
  config.init_from = str(tmp_path / "nothing")
  with pytest.raises(ValueError, match=r"a stage bundle directory .*moving-digits-tsr"):
    loop.train(config, str(tmp_path / "missing"), task=task, progress=False, stop_at=0)
