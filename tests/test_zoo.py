"""jaxgen.zoo: the local checkpoint loader, its errors, the native format, the registry and CLIs."""

import json
import os

import jax
import numpy as np
import pytest
import torch
import transformers

from jaxgen import cli
from jaxgen import zoo
from jaxgen.bench.reference import randomize, rel_err
from jaxgen.models import t5
from jaxgen.zoo import checkpoint
from jaxgen.zoo import families
from jaxgen.zoo import native
from jaxgen.zoo import registry

REQUIRED_PRESETS = ("dit-xl-2-256", "dit-s-2-256", "dit-b-2-256", "pixart-alpha-256",
                    "pixart-alpha-512", "wan2.1-t2v-1.3b", "wan2.1-t2v-14b", "sd-vae-ft-ema",
                    "wan2.1-vae", "clip-vit-l-14-text", "t5-v1_1-xxl", "umt5-xxl")


def state_reader(model: torch.nn.Module):
  state = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
  return state.__getitem__


def assert_trees_equal(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def tiny_t5(**overrides) -> transformers.T5EncoderModel:
  cfg = dict(vocab_size=64, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_heads=4,
             feed_forward_proj="gated-gelu")
  torch.manual_seed(0)
  return transformers.T5EncoderModel(transformers.T5Config(**(cfg | overrides))).eval()


@pytest.fixture(scope="module")
def t5_dir(tmp_path_factory):
  ref = tiny_t5()
  path = tmp_path_factory.mktemp("t5") / "text_encoder"
  ref.save_pretrained(path)
  return ref, path


# --- the loader ---------------------------------------------------------------------------------


def test_load_single_file(t5_dir):
  ref, path = t5_dir
  config, params = zoo.load(path)
  assert config == t5.T5Config.from_transformers(ref.config.to_dict())
  assert_trees_equal(params, t5.convert_params(config, state_reader(ref)))


def test_load_sharded_checkpoint(t5_dir, tmp_path):
  ref, _ = t5_dir
  ref.save_pretrained(tmp_path, max_shard_size="8KB")
  files = os.listdir(tmp_path)
  assert "model.safetensors.index.json" in files
  assert sum(f.endswith(".safetensors") for f in files) > 2
  config, params = zoo.load(tmp_path)
  assert_trees_equal(params, t5.convert_params(config, state_reader(ref)))


def test_load_bfloat16_checkpoint(tmp_path):
  ref = tiny_t5().to(torch.bfloat16)
  ref.save_pretrained(tmp_path)
  config, params = zoo.load(tmp_path, dtype="bfloat16")
  assert config.dtype == jax.numpy.bfloat16
  want = t5.convert_params(config, state_reader(ref))  # bf16 values, widened to float32
  assert all(x.dtype == np.float32 for x in jax.tree.leaves(params))
  assert_trees_equal(params, want)


def test_load_onto_shardings(t5_dir):
  _, path = t5_dir
  mesh = jax.make_mesh((8,), ("x",))
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  by_embed = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(None, "x"))
  config, host = zoo.load(path)
  shardings = jax.tree.map(lambda _: replicated, host)
  shardings["token_embedding"]["embedding"] = by_embed
  _, params = zoo.load(path, shardings=shardings)
  emb = params["token_embedding"]["embedding"]
  assert isinstance(emb, jax.Array) and emb.sharding == by_embed
  assert len(emb.addressable_shards) == 8 and emb.addressable_shards[0].data.shape == (64, 4)
  assert_trees_equal(params, host)


def test_load_onto_logical_shardings(t5_dir):
  mesh = jax.make_mesh((8,), ("x",))
  rules = [("embed", "x"), ("mlp", None), ("heads", None), ("vocab", None)]
  config = zoo.load_config(t5_dir[1])
  shardings = zoo.param_shardings(config, mesh, rules)
  _, params = zoo.load(t5_dir[1], shardings=shardings)
  wi = params["layers"]["wi_0"]["kernel"]  # [layers, embed, mlp]
  assert wi.sharding.spec == jax.sharding.PartitionSpec(None, "x", None)
  assert wi.addressable_shards[0].data.shape == (2, 4, 48)

def _write_checkpoint(path, config: dict, tensors: dict, name="model.safetensors"):
  from safetensors.numpy import save_file

  os.makedirs(path)
  (path / "config.json").write_text(json.dumps(config))
  save_file(tensors, path / name)


def test_load_older_transformers_layouts(t5_dir, tmp_path, caplog):
  from jaxgen.models import clip_text

  # CLIP saved before transformers v5: names under "text_model.", plus the position_ids buffer.
  torch.manual_seed(0)
  clip = transformers.CLIPTextModel(transformers.CLIPTextConfig(
      vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
      num_attention_heads=2, max_position_embeddings=8, eos_token_id=2))
  state = {k: v.numpy() for k, v in clip.state_dict().items()}
  old = {"text_model." + k: v for k, v in state.items()}
  old["text_model.embeddings.position_ids"] = np.arange(8)[None]
  _write_checkpoint(tmp_path / "clip", clip.config.to_dict() | {"architectures": ["CLIPTextModel"]},
                    old)
  with caplog.at_level("WARNING", logger="jaxgen.zoo.checkpoint"):
    config, params = zoo.load(tmp_path / "clip")
  assert "text_model.embeddings.position_ids" in caplog.text  # Reported as unused, not an error.
  assert_trees_equal(params, clip_text.convert_params(config, state.__getitem__))

  # T5 whose tied token table is saved only as encoder.embed_tokens.weight.
  ref, path = t5_dir
  tensors = {k: v.numpy() for k, v in ref.state_dict().items() if k != "shared.weight"}
  _write_checkpoint(tmp_path / "t5", json.loads((path / "config.json").read_text()), tensors)
  config, params = zoo.load(tmp_path / "t5")
  assert_trees_equal(params, t5.convert_params(config, state_reader(ref)))

def test_legacy_transformer2d_class_names():
  assert families.family_for({"_class_name": "Transformer2DModel",
                              "norm_type": "ada_norm_zero"}).name == "dit"
  assert families.family_for({"_class_name": "Transformer2DModel",
                              "norm_type": "ada_norm_single"}).name == "pixart"
  assert families.family_for({"architectures": ["UMT5EncoderModel"]}).name == "t5"


# --- errors -------------------------------------------------------------------------------------


def _copy_of(path, dst):
  os.makedirs(dst)
  for name in os.listdir(path):
    with open(os.path.join(path, name), "rb") as src, open(os.path.join(dst, name), "wb") as out:
      out.write(src.read())
  return dst


def test_error_missing_directory(tmp_path):
  with pytest.raises(zoo.CheckpointError, match="does not exist"):
    zoo.load(tmp_path / "nope")


def test_error_missing_config_names_the_layout(tmp_path):
  with pytest.raises(zoo.CheckpointError,
                     match=r"config.json.*diffusion_pytorch_model.safetensors"):
    zoo.load(tmp_path)


def test_error_pipeline_root_lists_components(t5_dir, tmp_path):
  _copy_of(t5_dir[1], tmp_path / "text_encoder")
  (tmp_path / "model_index.json").write_text("{}")
  with pytest.raises(zoo.CheckpointError, match="pipeline.*text_encoder"):
    zoo.load(tmp_path)


def test_error_missing_weights(t5_dir, tmp_path):
  path = _copy_of(t5_dir[1], tmp_path / "m")
  os.remove(path / "model.safetensors")
  with pytest.raises(zoo.CheckpointError, match=r"no safetensors.*model.safetensors"):
    zoo.load(path)


def test_error_missing_shard(t5_dir, tmp_path):
  t5_dir[0].save_pretrained(tmp_path, max_shard_size="8KB")
  index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
  shard = sorted(set(index["weight_map"].values()))[1]
  os.remove(tmp_path / shard)
  with pytest.raises(zoo.CheckpointError, match=f"missing.*{shard}"):
    zoo.load(tmp_path)


def test_error_missing_tensor(t5_dir, tmp_path):
  from safetensors.numpy import save_file

  path = _copy_of(t5_dir[1], tmp_path / "m")
  read = checkpoint.SafetensorsReader.from_files([str(path / "model.safetensors")])
  tensors = {k: read(k) for k in read.keys() if k != "encoder.final_layer_norm.weight"}
  save_file(tensors, path / "model.safetensors")
  with pytest.raises(zoo.CheckpointError, match="encoder.final_layer_norm.weight"):
    zoo.load(path)


def test_error_unsupported_class(t5_dir, tmp_path):
  path = _copy_of(t5_dir[1], tmp_path / "m")
  (path / "config.json").write_text(json.dumps({"_class_name": "UNet2DConditionModel"}))
  with pytest.raises(ValueError, match="UNet2DConditionModel.*cannot convert"):
    zoo.load(path)
  (path / "config.json").write_text(json.dumps({"d_model": 32}))
  with pytest.raises(ValueError, match="names no model class"):
    zoo.load(path)


def test_error_shape_mismatch(t5_dir, tmp_path):
  path = _copy_of(t5_dir[1], tmp_path / "m")
  cfg = json.loads((path / "config.json").read_text())
  (path / "config.json").write_text(json.dumps(cfg | {"d_ff": 40}))
  with pytest.raises(zoo.CheckpointError,
                     match=r"DenseReluDense\.w.*has shape .*48.*; expected .*40"):
    zoo.load(path)


def test_error_shape_mismatch_caught_after_conversion(t5_dir):
  shapes = families.FAMILIES["t5"].param_shapes(t5.T5Config(vocab_size=64, d_model=32, d_kv=8,
                                                           d_ff=48, num_layers=2, num_heads=4))
  _, params = zoo.load(t5_dir[1])
  params["final_layer_norm"]["scale"] = np.zeros(31, np.float32)
  with pytest.raises(zoo.CheckpointError, match=r"final_layer_norm/scale.*\(31,\).*\(32,\)"):
    checkpoint.check_params(params, shapes, "test")


# --- native format ------------------------------------------------------------------------------


def test_native_round_trip(t5_dir, tmp_path):
  config, params = zoo.load(t5_dir[1], dtype="bfloat16")
  dst = zoo.save(tmp_path / "native", config, params, source_class="T5EncoderModel")
  assert sorted(os.listdir(tmp_path)) == ["native"]  # No temporary directory left behind.
  restored_config, restored = zoo.restore(dst)
  assert restored_config == config and restored_config.dtype == jax.numpy.bfloat16
  assert_trees_equal(restored, params)
  meta = native.read_meta(dst)
  assert meta["family"] == "t5" and meta["source_class"] == "T5EncoderModel"
  with pytest.raises(ValueError, match="already exists"):
    zoo.save(dst, config, params)
  zoo.save(dst, config, jax.tree.map(np.zeros_like, params), overwrite=True)
  assert sorted(os.listdir(tmp_path)) == ["native"]
  assert not np.asarray(zoo.restore(dst)[1]["final_layer_norm"]["scale"]).any()


def test_native_restore_onto_shardings(t5_dir, tmp_path):
  config, params = zoo.load(t5_dir[1])
  zoo.save(tmp_path / "native", config, params)
  mesh = jax.make_mesh((8,), ("x",))
  target = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(None, "x"))
  shardings = jax.tree.map(
      lambda _: jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()), params)
  shardings["token_embedding"]["embedding"] = target
  _, restored = zoo.restore(tmp_path / "native", shardings=shardings)
  assert restored["token_embedding"]["embedding"].sharding == target
  assert_trees_equal(restored, params)


def test_native_errors(tmp_path):
  with pytest.raises(ValueError, match="not a jaxgen native checkpoint"):
    zoo.restore(tmp_path)


# --- CLI ----------------------------------------------------------------------------------------


def test_cli_convert(t5_dir, tmp_path, capsys):
  ref, path = t5_dir
  dst = tmp_path / "converted"
  assert cli.main(["convert", str(path), str(dst), "--dtype", "bfloat16"]) == 0
  out = capsys.readouterr().out
  count = sum(p.numel() for p in ref.parameters())
  assert "T5EncoderModel" in out and f"{count:,} params" in out
  config, params = zoo.restore(dst)
  assert config.dtype == jax.numpy.bfloat16
  assert_trees_equal(params, t5.convert_params(config, state_reader(ref)))
  assert cli.main(["convert", str(path), str(dst)]) == 2  # DST exists.
  assert "already exists" in capsys.readouterr().err


def test_cli_convert_error_is_for_people(tmp_path, capsys):
  assert cli.main(["convert", str(tmp_path / "nope"), str(tmp_path / "out")]) == 2
  err = capsys.readouterr().err
  assert "jaxgen convert: error:" in err and "nope" in err and "Traceback" not in err


def test_cli_models_lists_every_preset(capsys):
  assert cli.main(["models"]) == 0
  out = capsys.readouterr().out
  presets, pipelines, stages = out.split("\n\n")
  lines = presets.splitlines()
  assert lines[0].split()[:4] == ["NAME", "FAMILY", "PARAMS", "SOURCE"]
  listed = {line.split()[0] for line in lines[1:]}
  assert set(REQUIRED_PRESETS) <= listed and listed == set(registry.REGISTRY)
  assert "?" not in {line.split()[2] for line in lines[1:]}
  # What `jaxgen generate --model` and `jaxgen eval --model` take, each with its description.
  rows = {line.split()[0]: line.split(maxsplit=2)[1:] for line in pipelines.splitlines()[1:]}
  assert {"moving-digits", "moving-digits-cascade", "random-tiny", "random-tiny-cascade"} == set(rows)
  assert rows["moving-digits"][1].startswith("Moving Digits text-to-video")
  assert rows["moving-digits-cascade"][1] == (
      "moving-digits -> moving-digits-tsr -> moving-digits-ssr")
  rows = {line.split()[0]: line.split(maxsplit=2)[1:] for line in stages.splitlines()[1:]}
  assert set(rows) == {"moving-digits-tsr", "moving-digits-ssr"}
  assert rows["moving-digits-tsr"][1].startswith("Moving Digits TSR")


# --- registry -----------------------------------------------------------------------------------


def test_registry():
  assert set(REQUIRED_PRESETS) <= set(registry.REGISTRY)
  for preset in registry.REGISTRY.values():
    assert preset.source and preset.description
    assert type(preset.config).__name__ == families.FAMILIES[preset.family].config_class
  with pytest.raises(ValueError, match="unknown model preset"):
    registry.get("dit-xxl")
  with pytest.raises(ValueError, match="ships no weights"):
    registry.get("umt5-xxl").load()
  with pytest.raises(ValueError, match="already registered"):
    registry.register("umt5-xxl", "t5", "x", "y")


def test_registry_preset_with_shipped_weights(t5_dir, tmp_path):
  config, params = zoo.load(t5_dir[1])
  zoo.save(tmp_path / "w", config, params)
  preset = registry.Preset("tiny-t5", "t5", "jaxgen: test", "a tiny T5", lambda: config,
                           str(tmp_path / "w"))
  assert preset.num_params() == sum(x.size for x in jax.tree.leaves(params))
  assert_trees_equal(preset.load()[1], params)


# --- every family through save_pretrained -> zoo.load -> forward parity ---------------------------
# Tiny configs; shapes as in the models' own parity tests, so compiled programs are shared.


def _saved(ref, tmp_path_factory, name):
  path = tmp_path_factory.mktemp(name) / "model"
  randomize(ref).save_pretrained(path)
  config, params = zoo.load(path)
  return config, params


def _nchw(x):
  return torch.from_numpy(np.moveaxis(x, -1, 1).copy())


def _nhwc(x):
  return np.moveaxis(x.detach().numpy(), 1, -1)


def test_load_dit(tmp_path_factory):
  from diffusers import DiTTransformer2DModel

  from jaxgen.models import dit

  ref = DiTTransformer2DModel(num_attention_heads=2, attention_head_dim=32, in_channels=4,
                              out_channels=8, num_layers=2, sample_size=8, patch_size=2,
                              num_embeds_ada_norm=10)
  config, params = _saved(ref, tmp_path_factory, "dit")
  rng = np.random.default_rng(0)
  x = rng.standard_normal((2, 8, 8, 4)).astype(np.float32)
  t, y = np.array([3.0, 917.0], np.float32), np.array([1, 10], np.int32)
  with torch.no_grad():
    want = _nhwc(ref(_nchw(x), torch.from_numpy(t), torch.from_numpy(y).long()).sample)
  got = jax.jit(dit.DiT(config).apply)({"params": params}, x, t, y)
  assert rel_err(got, want) <= 1e-4


def test_load_pixart(tmp_path_factory):
  from diffusers import PixArtTransformer2DModel

  from jaxgen.models import pixart

  ref = PixArtTransformer2DModel(
      num_attention_heads=2, attention_head_dim=48, in_channels=4, out_channels=8, num_layers=2,
      sample_size=8, patch_size=2, cross_attention_dim=96, caption_channels=40,
      interpolation_scale=0.5, use_additional_conditions=True)
  config, params = _saved(ref, tmp_path_factory, "pixart")
  rng = np.random.default_rng(0)
  x = rng.standard_normal((2, 6, 10, 4)).astype(np.float32)
  t = np.array([5.0, 781.0], np.float32)
  context = rng.standard_normal((2, 7, 40)).astype(np.float32)
  mask = np.array([[1] * 7, [1] * 4 + [0] * 3], bool)
  resolution = np.array([[48.0, 80.0], [48.0, 80.0]], np.float32)
  aspect = np.array([[0.6], [0.6]], np.float32)
  with torch.no_grad():
    want = _nhwc(ref(_nchw(x), torch.from_numpy(context), torch.from_numpy(t),
                     added_cond_kwargs={"resolution": torch.from_numpy(resolution),
                                        "aspect_ratio": torch.from_numpy(aspect)},
                     encoder_attention_mask=torch.from_numpy(mask).float()).sample)
  got = jax.jit(pixart.PixArt(config).apply)({"params": params}, x, t, context, mask, resolution,
                                             aspect)
  assert rel_err(got, want) <= 1e-4


def test_load_wan(tmp_path_factory):
  from diffusers import WanTransformer3DModel

  from jaxgen.models import wan

  ref = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=32,
                              in_channels=4, out_channels=4, text_dim=24, freq_dim=32, ffn_dim=96,
                              num_layers=2)
  config, params = _saved(ref, tmp_path_factory, "wan")
  rng = np.random.default_rng(0)
  x = rng.standard_normal((2, 3, 6, 8, 4)).astype(np.float32)
  t = np.array([12.0, 955.0], np.float32)
  context = rng.standard_normal((2, 5, 24)).astype(np.float32)
  with torch.no_grad():
    want = _nhwc(ref(_nchw(x), torch.from_numpy(t), torch.from_numpy(context)).sample)
  got = jax.jit(wan.Wan(config).apply)({"params": params}, x, t, context)
  assert rel_err(got, want) <= 1e-4


def _check_vae(ref, model, params, x):
  """Posterior mean and the decode of it, ours vs the reference."""
  with torch.no_grad():
    mean_ref = ref.encode(_nchw(x)).latent_dist.mean
    out_ref = _nhwc(ref.decode(mean_ref).sample)
  mean, _ = jax.jit(lambda p, x: model.apply(p, x, method="encode"))({"params": params}, x)
  out = jax.jit(lambda p, z: model.apply(p, z, method="decode"))({"params": params}, mean)
  assert rel_err(mean, _nhwc(mean_ref)) <= 1e-4
  assert rel_err(out, out_ref) <= 1e-4


def test_load_autoencoder_kl(tmp_path_factory):
  from diffusers import AutoencoderKL

  from jaxgen.models import vae_kl

  ref = AutoencoderKL(block_out_channels=(32, 64), layers_per_block=1, norm_num_groups=8,
                      down_block_types=("DownEncoderBlock2D",) * 2,
                      up_block_types=("UpDecoderBlock2D",) * 2)
  config, params = _saved(ref, tmp_path_factory, "vae_kl")
  x = np.random.default_rng(0).uniform(-1, 1, (1, 16, 16, 3)).astype(np.float32)
  _check_vae(ref, vae_kl.AutoencoderKL(config), params, x)


def test_load_autoencoder_kl_wan(tmp_path_factory):
  from diffusers import AutoencoderKLWan

  from jaxgen.models import vae_wan

  ref = AutoencoderKLWan(base_dim=8, z_dim=16, dim_mult=[1, 2, 2], num_res_blocks=1,
                         temperal_downsample=[False, True], scale_factor_temporal=2,
                         scale_factor_spatial=4)
  config, params = _saved(ref, tmp_path_factory, "vae_wan")
  x = np.random.default_rng(0).uniform(-1, 1, (1, 5, 8, 8, 3)).astype(np.float32)
  _check_vae(ref, vae_wan.AutoencoderKLWan(config), params, x)


def test_registry_parameter_counts_equal_the_references():
  import diffusers

  xxl_t5 = dict(d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
                feed_forward_proj="gated-gelu")
  pixart = dict(num_attention_heads=16, attention_head_dim=72, in_channels=4, out_channels=8,
                num_layers=28, caption_channels=4096, cross_attention_dim=1152)
  wan = dict(patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128,
             in_channels=16, out_channels=16, text_dim=4096, freq_dim=256, ffn_dim=8960,
             num_layers=30, cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6)
  dit = dict(in_channels=4, out_channels=8, sample_size=32, patch_size=2, num_embeds_ada_norm=1000)
  references = {
      "dit-xl-2-256": (diffusers.DiTTransformer2DModel,
                       dict(dit, num_attention_heads=16, attention_head_dim=72, num_layers=28)),
      "dit-b-2-256": (diffusers.DiTTransformer2DModel,
                      dict(dit, num_attention_heads=12, attention_head_dim=64, num_layers=12)),
      "dit-s-2-256": (diffusers.DiTTransformer2DModel,
                      dict(dit, num_attention_heads=6, attention_head_dim=64, num_layers=12)),
      "pixart-alpha-256": (diffusers.PixArtTransformer2DModel, dict(pixart, sample_size=32)),
      "pixart-alpha-512": (diffusers.PixArtTransformer2DModel, dict(pixart, sample_size=64)),
      "pixart-alpha-1024": (diffusers.PixArtTransformer2DModel,
                            dict(pixart, sample_size=128, use_additional_conditions=True)),
      "wan2.1-t2v-1.3b": (diffusers.WanTransformer3DModel, wan),
      "wan2.1-t2v-14b": (diffusers.WanTransformer3DModel,
                         dict(wan, num_attention_heads=40, ffn_dim=13824, num_layers=40)),
      "sd-vae-ft-ema": (diffusers.AutoencoderKL, dict(
          block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
          down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)),
      "wan2.1-vae": (diffusers.AutoencoderKLWan, {}),
      "clip-vit-l-14-text": (transformers.CLIPTextModel, transformers.CLIPTextConfig(
          vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
          num_attention_heads=12, max_position_embeddings=77)),
      "t5-v1_1-xxl": (transformers.T5EncoderModel, transformers.T5Config(vocab_size=32128,
                                                                         **xxl_t5)),
      "umt5-xxl": (transformers.UMT5EncoderModel, transformers.UMT5Config(vocab_size=256384,
                                                                          **xxl_t5)),
  }
  assert set(references) == set(registry.REGISTRY)
  for name, (cls, cfg) in references.items():
    with torch.device("meta"):
      model = cls(**cfg) if isinstance(cfg, dict) else cls(cfg)
    want = sum(p.numel() for p in model.parameters())
    assert registry.get(name).num_params() == want, name

