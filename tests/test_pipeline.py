"""The text-to-video pipeline on the randomly initialised tiny model: bundles, tasks, CLI."""

import dataclasses
import functools
import json
import os
import warnings

import imageio.v3 as iio
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import cli
from jaxgen.diffusion.samplers import SamplerConfig, make_plan
from jaxgen.pipelines import conditioning
from jaxgen.pipelines.bundle import load_bundle, save_bundle
from jaxgen.pipelines.load import load_pipeline, random_tiny
from jaxgen.pipelines.text_to_video import TextToVideo, denoiser, expert, guidance_weights

STEPS = 2  # every test samples with the same static config, so the program compiles once


@pytest.fixture(scope="module")
def pipe():
  return TextToVideo(*random_tiny())


def test_generates_videos_deterministically(pipe):
  videos = pipe(["a red 3 moving left", "a blue 5 moving up"], num_steps=STEPS, seed=1)
  assert videos.shape == (2, 17, 32, 32, 3) and videos.dtype == np.uint8
  np.testing.assert_array_equal(videos, pipe(["a red 3 moving left", "a blue 5 moving up"],
                                             num_steps=STEPS, seed=1))
  assert not np.array_equal(videos, pipe(["a red 3 moving left", "a blue 5 moving up"],
                                         num_steps=STEPS, seed=2))
  # The prompt reaches the model.
  assert not np.array_equal(videos[0], videos[1])


def test_bundle_round_trip(pipe, tmp_path):
  config, params, tokenizer_dir = random_tiny()
  path = save_bundle(tmp_path / "tiny", config, params, tokenizer_dir)
  loaded = load_bundle(path)
  assert loaded[0] == config
  np.testing.assert_array_equal(TextToVideo(*loaded)("a red 3 moving left", num_steps=STEPS),
                                pipe("a red 3 moving left", num_steps=STEPS))
  assert not [p for p in os.listdir(tmp_path) if p != "tiny"]  # no temporary leftovers
  half = load_bundle(save_bundle(tmp_path / "half", config, params, tokenizer_dir, storage_dtype="float16"))
  kernel = params["transformer"]["proj_out"]["kernel"]
  np.testing.assert_allclose(half[1]["transformer"]["proj_out"]["kernel"], kernel, rtol=1e-3, atol=1e-6)


def _with_experts():
  """The tiny model with two more, different transformers as experts for the lower levels."""
  config, params, tokenizer_dir = random_tiny()
  config = dataclasses.replace(config, transformer_2=config.transformer, boundary_ratio=0.6,
                               transformer_3=config.transformer, boundary_ratio_2=0.3)
  params = dict(params, transformer_2=jax.tree.map(lambda p: -p, params["transformer"]),
                transformer_3=jax.tree.map(lambda p: 0.5 * p, params["transformer"]))
  return config, params, tokenizer_dir


def test_noise_level_experts_each_denoise_their_levels(tmp_path):
  config, params, tokenizer_dir = _with_experts()
  assert config.level_intervals == {"transformer": (0.6, 1.0), "transformer_2": (0.3, 0.6),
                                    "transformer_3": (0.0, 0.3)}
  t, h, w, c = config.latent_shape(config.num_frames)
  x = jax.random.normal(jax.random.key(0), (1, t, h, w, c))
  cond = {"context": jnp.ones((1, 4, 32)), "pooled": None, "mask": jnp.ones((1, 4), bool),
          "frames": jnp.zeros((1, t, h, w, c + 1))}
  run = jax.jit(lambda name, level: (denoiser if name is None else functools.partial(expert, name=name))(
      config, params)(x, jnp.full((1,), level), cond), static_argnums=0)
  outputs = {name: run(name, 500.0) for name in config.transformer_names}
  assert not np.allclose(outputs["transformer"], outputs["transformer_2"])
  assert not np.allclose(outputs["transformer_2"], outputs["transformer_3"])
  # Boundaries at timesteps 600 and 300: each level goes to the expert whose interval holds it.
  for level, name in ((999.0, "transformer"), (600.0, "transformer"), (599.0, "transformer_2"),
                      (300.0, "transformer_2"), (299.0, "transformer_3"), (0.0, "transformer_3")):
    np.testing.assert_allclose(run(None, level), run(name, level), rtol=1e-6, atol=1e-6)
  # A bundle keeps them all, and samples through them.
  loaded = load_bundle(save_bundle(tmp_path / "experts", config, params, tokenizer_dir))
  assert loaded[0] == config and set(loaded[1]) == {"text_encoder", "vae", *config.transformer_names}
  assert TextToVideo(*loaded)("a red 3 moving left", num_steps=STEPS).shape == (1, 17, 32, 32, 3)
  with pytest.raises(ValueError, match="expected text_encoder, transformer, transformer_2, transformer_3, vae"):
    save_bundle(tmp_path / "bad", config, {k: v for k, v in params.items() if k != "transformer_2"},
                tokenizer_dir)


def test_swap_experts_combines_experts_of_bundles_sharing_a_text_encoder(tmp_path):
  """experiments/swap_experts.py: each expert slot from BUNDLE:NAME, the text encoder checked."""
  import sys  # pylint: disable=g-import-not-at-top
  sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "experiments"))
  import swap_experts  # pylint: disable=g-import-not-at-top
  config, params, tokenizer_dir = _with_experts()
  a = str(save_bundle(tmp_path / "a", config, params, tokenizer_dir))
  b = str(save_bundle(tmp_path / "b", *random_tiny()))
  got, got_params, _ = swap_experts.hybrid(b, [0.7, 0.2], [f"{a}:transformer_3", f"{b}:transformer",
                                                          f"{a}:transformer"])
  assert got.transformer_names == ("transformer", "transformer_2", "transformer_3")
  assert (got.boundary_ratio, got.boundary_ratio_2) == (0.7, 0.2)
  expected = {"transformer": params["transformer_3"],
              "transformer_2": random_tiny()[1]["transformer"], "transformer_3": params["transformer"]}
  for slot, want in expected.items():
    for x, y in zip(jax.tree.leaves(got_params[slot]), jax.tree.leaves(want)):
      np.testing.assert_array_equal(x, np.asarray(y))
  two, _, _ = swap_experts.hybrid(b, [0.5], [f"{a}:transformer_2", f"{b}:transformer"])
  assert two.transformer_names == ("transformer", "transformer_2") and two.boundary_ratio == 0.5
  other = dict(params, text_encoder=jax.tree.map(lambda p: p + 1.0, params["text_encoder"]))
  c = str(save_bundle(tmp_path / "c", config, other, tokenizer_dir))
  with pytest.raises(ValueError, match="c:transformer'.*text encoder is not"):
    swap_experts.hybrid(a, [0.5], [f"{c}:transformer", f"{a}:transformer"])
  with pytest.raises(ValueError, match="has experts"):
    swap_experts.hybrid(b, [0.5], [f"{b}:transformer_2", f"{b}:transformer"])
  with pytest.raises(ValueError, match="expected one or two boundaries and one expert more"):
    swap_experts.hybrid(b, [0.5], [f"{b}:transformer"])


def test_guidance_per_expert():
  """Each step takes the scale of the expert whose levels it starts from (Wan 2.2's two scales)."""
  config, params, tokenizer_dir = _with_experts()
  sampler = SamplerConfig("unipc", 10)
  t = np.asarray(make_plan(sampler, config.schedule).t_hat)
  expected = np.where(t >= 600, 7.0, np.where(t >= 300, 3.0, 1.5))
  assert set(expected) == {7.0, 3.0, 1.5}  # the plan visits all three experts
  np.testing.assert_array_equal(guidance_weights(config, sampler, (7, 3, 1.5)), expected)
  np.testing.assert_array_equal(guidance_weights(config, sampler, 4.0), np.full(10, 4.0))
  # Also inside a traced function, as the training task's sample grid calls it.
  np.testing.assert_array_equal(jax.jit(lambda: guidance_weights(config, sampler, (7, 3, 1.5)))(),
                                expected)
  for bad in ((7, 3), (4, float("nan"), 1), [[4.0]], "high"):
    with pytest.raises(ValueError, match=r"guidance_scale=.* expected a number or 3 numbers"):
      guidance_weights(config, sampler, bad)
  pipe = TextToVideo(config, params, tokenizer_dir)
  same = pipe("a red 3 moving left", num_steps=STEPS, guidance_scale=(4, 4, 4))
  np.testing.assert_array_equal(same, pipe("a red 3 moving left", num_steps=STEPS, guidance_scale=4))
  assert not np.array_equal(same, pipe("a red 3 moving left", num_steps=STEPS, guidance_scale=(1, 4, 4)))


def test_noise_level_expert_config_errors():
  config = random_tiny()[0]
  two = dict(transformer_2=config.transformer, boundary_ratio=0.5)
  with pytest.raises(ValueError, match="boundary_ratio=None with an expert"):
    dataclasses.replace(config, transformer_2=config.transformer)
  with pytest.raises(ValueError, match="boundary_ratio_2=0.2 with no expert"):
    dataclasses.replace(config, boundary_ratio_2=0.2, **two)
  with pytest.raises(ValueError, match="transformer_3 is given without transformer_2"):
    dataclasses.replace(config, transformer_3=config.transformer, boundary_ratio_2=0.2)
  for ratios in ((1.5, None), (0.5, 0.7), (0.5, 0.5)):
    with pytest.raises(ValueError, match="expected 1 > boundary_ratio > boundary_ratio_2 > 0"):
      dataclasses.replace(config, transformer_2=config.transformer, boundary_ratio=ratios[0],
                          transformer_3=None if ratios[1] is None else config.transformer,
                          boundary_ratio_2=ratios[1])
  with pytest.raises(ValueError, match="transformer_2.text_dim=64"):
    dataclasses.replace(config, transformer_2=dataclasses.replace(config.transformer, text_dim=64),
                        boundary_ratio=0.5)


def test_given_frames_are_kept(pipe):
  """Image-to-video: the first latent frame is given, so the first decoded frame is its decode."""
  source = pipe("a green 8 moving down", num_steps=STEPS, seed=3)
  z = np.asarray(pipe.encode_video(source))[0]
  mask = np.asarray(conditioning.task_mask("i2v", z.shape[0]))
  out = pipe("a green 8 moving down", num_steps=STEPS, seed=4, condition=z, frame_mask=mask)
  reference = pipe("a green 8 moving down", num_steps=STEPS, seed=4, condition=z,
                   frame_mask=np.ones_like(mask))  # every frame given: the plain reconstruction
  np.testing.assert_array_equal(out[0, 0], reference[0, 0])
  assert not np.array_equal(out[0, -1], reference[0, -1])


def test_task_masks():
  np.testing.assert_array_equal(conditioning.task_mask("t2v", 5), [0, 0, 0, 0, 0])
  np.testing.assert_array_equal(conditioning.task_mask("i2v", 5), [1, 0, 0, 0, 0])
  np.testing.assert_array_equal(conditioning.task_mask("extend", 5, 2), [1, 1, 0, 0, 0])
  np.testing.assert_array_equal(conditioning.task_mask("interpolate", 5), [1, 0, 0, 0, 1])
  with pytest.raises(ValueError, match="task='outpaint'"):
    conditioning.task_mask("outpaint", 5)


@pytest.mark.parametrize("ext", [".gif", ".mp4"])
def test_cli_writes_videos(tmp_path, ext, capsys):
  out = str(tmp_path / f"seven{ext}")
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    assert cli.main(["generate", "a red 7 moving right", "-o", out, "--model", "random-tiny",
                     "--steps", str(STEPS), "--upscale", "2"]) == 0
  assert iio.imread(out).shape == (17, 64, 64, 3)
  assert "wrote" in capsys.readouterr().out
  # ffmpeg's subprocess (fork, then exec at once) must not raise JAX's fork warning at users.
  assert not [w for w in caught if "os.fork" in str(w.message)]
  # Readable as a file open() made would be, not private like the temporary it was written as.
  umask = os.umask(0)
  os.umask(umask)
  assert os.stat(out).st_mode & 0o777 == 0o666 & ~umask


def test_cli_writes_png_frames_and_several_videos(tmp_path):
  out = str(tmp_path / "frames.png")
  assert cli.main(["generate", "a red 7 moving right", "-o", out, "--model", "random-tiny",
                   "--steps", str(STEPS), "--num-videos", "2", "--upscale", "1"]) == 0
  names = sorted(os.listdir(tmp_path))
  assert len(names) == 34 and names[0] == "frames_0_000.png" and names[-1] == "frames_1_016.png"
  assert iio.imread(tmp_path / names[0]).shape == (32, 32, 3)


def test_default_model_says_when_it_is_untrained(capsys):
  pipe_, note = load_pipeline(None)
  assert isinstance(pipe_, TextToVideo)
  if note is not None:
    assert "randomly initialised" in note


def test_eval_judges_images(tmp_path):
  """`jaxgen eval --frames 1`: single frames, judged on digit and colour only."""
  out = tmp_path / "eval.json"
  assert cli.main(["eval", "--model", "random-tiny", "--frames", "1", "--num-videos", "2",
                   "--steps", "2", "--output", str(out)]) == 0
  result = json.loads(out.read_text())
  assert result["frames"] == 1 and result["num_videos"] == 2
  assert "direction_accuracy" not in result and "digit_accuracy" in result


@pytest.mark.parametrize("argv,match", [
    (["-o", "x.avi"], "extension '.avi'"),
    (["-o", "x.gif", "--steps", "0"], "--steps=0"),
    (["-o", "x.gif", "--frames", "16", "--model", "random-tiny"], "num_frames=16"),
    (["-o", "x.gif", "--model", "no-such-model"], "model='no-such-model'"),
    (["-o", "x.gif", "--sampler", "plms", "--model", "random-tiny"], "sampler='plms'"),
    (["-o", "x.gif", "--guidance", "5,3", "--model", "random-tiny"],
     "guidance_scale=(5.0, 3.0) is not supported; expected a number"),
])
def test_cli_errors_name_the_argument(argv, match, capsys, tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  assert cli.main(["generate", "a red 7 moving right"] + argv) == 2
  err = capsys.readouterr().err
  assert "error:" in err and match in err
  assert not os.listdir(tmp_path)  # nothing half-written


def test_cli_guidance_takes_one_scale_per_expert(capsys):
  from jaxgen.pipelines.generate_cli import guidance_scales
  assert guidance_scales("4") == 4.0 and guidance_scales("5,3") == (5.0, 3.0)
  with pytest.raises(SystemExit):
    cli.main(["generate", "a red 7", "-o", "x.gif", "--guidance", "5;3"])
  assert "--guidance: '5;3'; expected a number or comma-separated numbers" in capsys.readouterr().err


def test_write_file_is_atomic(tmp_path):
  """jaxgen.files.write_file, which every file output goes through: the writer fills a temporary
  with the target's extension; a failing writer leaves the old file and no temporary behind."""
  from jaxgen import files
  target = tmp_path / "out.json"
  seen = []
  files.write_file(target, lambda tmp: (seen.append(tmp), open(tmp, "w").write("old")))
  assert seen[0].endswith(".json") and target.read_text() == "old"

  def fail(tmp):
    open(tmp, "w").write("half")
    raise OSError("disk full")

  with pytest.raises(OSError, match="disk full"):
    files.write_file(target, fail)
  assert target.read_text() == "old" and os.listdir(tmp_path) == ["out.json"]


def test_cli_cascade_rejects_per_run_sampler_settings(capsys):
  assert cli.main(["generate", "a red 7 moving right", "-o", "x.gif", "--model", "random-tiny-cascade",
                   "--steps", "3"]) == 2
  assert "--steps=3 is not supported with the cascade" in capsys.readouterr().err
