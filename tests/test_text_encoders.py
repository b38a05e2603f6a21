"""CLIP text, T5 and umT5 encoders vs transformers, loaded through jaxgen.zoo; the tokenizer."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers

from jaxgen import zoo
from jaxgen.bench.reference import randomize, rel_err
from jaxgen.models import clip_text
from jaxgen.models import t5
from jaxgen.models.tokenizers import load_tokenizer
from jaxgen.zoo import registry

VOCAB, LENGTH = 99, 16


def _inputs(eos: int):
  """Two right-padded sequences with an EOS, and their padding mask."""
  ids = np.random.RandomState(0).randint(3, VOCAB - 2, (2, LENGTH))
  mask = np.zeros_like(ids)
  for row, n in enumerate((LENGTH - 3, 6)):
    ids[row, n - 1] = eos
    mask[row, :n] = 1
  return ids, mask


def _reference(model, ids, mask):
  with torch.no_grad():
    return model(torch.tensor(ids), attention_mask=torch.tensor(mask))


@pytest.fixture(scope="module", params=["legacy_eos", "eos_id"])
def clip(request, tmp_path_factory):
  eos = 2 if request.param == "legacy_eos" else VOCAB - 1
  cfg = transformers.CLIPTextConfig(
      vocab_size=VOCAB + 1, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
      num_attention_heads=4, max_position_embeddings=LENGTH, eos_token_id=eos, bos_token_id=0,
      pad_token_id=1, hidden_act="quick_gelu" if eos == 2 else "gelu")
  ref = randomize(transformers.CLIPTextModel(cfg))
  path = tmp_path_factory.mktemp("clip") / "text_encoder"
  ref.save_pretrained(path)
  config, params = zoo.load(path)
  return ref, config, params, eos


def test_clip_parity(clip):
  ref, config, params, eos = clip
  ids, mask = _inputs(VOCAB if eos == 2 else eos)  # Legacy pooling: EOS is the largest id.
  out = _reference(ref, ids, mask)
  hidden, pooled = jax.jit(clip_text.CLIPTextModel(config).apply)({"params": params}, ids, mask)
  assert hidden.shape == (2, LENGTH, 32) and pooled.shape == (2, 32)
  assert rel_err(hidden, out.last_hidden_state) <= 1e-4
  assert rel_err(pooled, out.pooler_output) <= 1e-4


T5_CASES = {
    "t5-v1_1": (transformers.T5EncoderModel, transformers.T5Config, "gated-gelu"),
    "t5-v1_0": (transformers.T5EncoderModel, transformers.T5Config, "relu"),
    "umt5": (transformers.UMT5EncoderModel, transformers.UMT5Config, "gated-gelu"),
}


@pytest.fixture(scope="module", params=sorted(T5_CASES))
def t5_model(request, tmp_path_factory):
  model_cls, config_cls, proj = T5_CASES[request.param]
  # 8 buckets up to distance 12 < LENGTH, so the log-spaced buckets are exercised too.
  cfg = config_cls(vocab_size=VOCAB + 1, d_model=32, d_kv=8, d_ff=48, num_layers=3, num_heads=4,
                   feed_forward_proj=proj, relative_attention_num_buckets=8,
                   relative_attention_max_distance=12)
  ref = randomize(model_cls(cfg))
  path = tmp_path_factory.mktemp(request.param) / "text_encoder"
  ref.save_pretrained(path)
  config, params = zoo.load(path)
  return request.param, ref, config, params


def test_t5_parity(t5_model):
  name, ref, config, params = t5_model
  assert config.per_layer_position_bias == (name == "umt5")
  assert config.is_gated_act == (name != "t5-v1_0")
  ids, mask = _inputs(1)
  out = _reference(ref, ids, mask)
  hidden = jax.jit(t5.T5Encoder(config).apply)({"params": params}, ids, mask)
  assert rel_err(hidden, out.last_hidden_state) <= 1e-4


@pytest.mark.parametrize("case", sorted(T5_CASES))
def test_t5_bfloat16_close_to_float32(case):
  # The reference's own init: realistic attention logits (T5 does not scale them, so the large
  # random weights of the parity tests make its softmax needlessly sharp for a bf16 check).
  model_cls, config_cls, proj = T5_CASES[case]
  torch.manual_seed(0)
  ref = model_cls(config_cls(vocab_size=VOCAB + 1, d_model=32, d_kv=8, d_ff=48, num_layers=3,
                             num_heads=4, feed_forward_proj=proj)).eval()
  state = {k: v.numpy() for k, v in ref.state_dict().items()}
  config = t5.T5Config.from_transformers(ref.config.to_dict())
  params = t5.convert_params(config, state.__getitem__)
  ids, mask = _inputs(1)
  out = _reference(ref, ids, mask)
  config = zoo.checkpoint.with_dtype(config, "bfloat16")
  hidden = jax.jit(t5.T5Encoder(config).apply)({"params": params}, ids, mask)
  assert hidden.dtype == jnp.float32 and np.isfinite(hidden).all()
  assert rel_err(hidden, out.last_hidden_state) <= 2e-2


def test_clip_bfloat16_close_to_float32(clip):
  ref, config, params, eos = clip
  ids, mask = _inputs(VOCAB if eos == 2 else eos)
  out = _reference(ref, ids, mask)
  config = zoo.checkpoint.with_dtype(config, jnp.bfloat16)
  hidden, _ = jax.jit(clip_text.CLIPTextModel(config).apply)({"params": params}, ids, mask)
  assert rel_err(hidden, out.last_hidden_state) <= 2e-2


def test_clip_bidirectional_sees_the_words_after():
  """causal=False: a token's state depends on the tokens after it, and never on padding."""
  cfgs = {c: clip_text.CLIPTextConfig(vocab_size=20, hidden_size=16, intermediate_size=32,
                                      num_layers=2, num_heads=2, max_length=8, eos_token_id=3,
                                      causal=c) for c in (True, False)}
  ids = jnp.array([[1, 5, 6, 7, 3, 0, 0, 0], [1, 5, 6, 9, 3, 0, 0, 0]])  # differ at position 3
  mask = ids != 0
  params = clip_text.CLIPTextModel(cfgs[True]).init(jax.random.key(0), ids)["params"]
  for causal, cfg in cfgs.items():
    run = lambda i: clip_text.CLIPTextModel(cfg).apply({"params": params}, i, mask)[0]
    states = run(ids)
    before = float(jnp.abs(states[0, :3] - states[1, :3]).max())
    assert (before == 0) if causal else (before > 1e-3)
    padded = run(ids.at[:, 6].set(11))  # a different padding token changes no real token
    np.testing.assert_array_equal(padded[:, :5], states[:, :5])


def test_clip_local_attention_reaches_layers_times_window():
  """attention_window=1, two layers: a word reaches the states two positions away, not three."""
  cfg = clip_text.CLIPTextConfig(vocab_size=20, hidden_size=16, intermediate_size=32, num_layers=2,
                                 num_heads=2, max_length=8, eos_token_id=3, causal=False,
                                 attention_window=1)
  ids = jnp.array([[1, 5, 6, 7, 8, 9, 3, 0], [1, 5, 6, 7, 8, 4, 3, 0]])  # differ at position 5
  model = clip_text.CLIPTextModel(cfg)
  params = model.init(jax.random.key(0), ids)["params"]
  states, _ = model.apply({"params": params}, ids, ids != 0)
  change = jnp.abs(states[0] - states[1]).max(-1)
  np.testing.assert_array_equal(change[:3], 0)
  assert (change[3:7] > 1e-3).all()
  with pytest.raises(ValueError, match=r"attention_window=0; expected a positive int"):
    clip_text.CLIPTextConfig(attention_window=0)


@pytest.mark.parametrize("num_buckets,max_distance", [(32, 128), (8, 12), (64, 256)])
def test_relative_position_buckets_match_reference(num_buckets, max_distance):
  from transformers.models.t5.modeling_t5 import T5Attention

  length = 600
  offsets = torch.arange(length)[None, :] - torch.arange(length)[:, None]
  want = T5Attention._relative_position_bucket(offsets, True, num_buckets, max_distance).numpy()
  np.testing.assert_array_equal(t5.relative_position_buckets(length, num_buckets, max_distance),
                                want)


def _count_reference(model_cls, config) -> int:
  with torch.device("meta"):
    return sum(p.numel() for p in model_cls(config).parameters())


def test_full_size_parameter_counts():
  clip_cfg = transformers.CLIPTextConfig(
      vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
      num_attention_heads=12, max_position_embeddings=77)
  xxl = dict(d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
             feed_forward_proj="gated-gelu")
  want = {
      "clip-vit-l-14-text": _count_reference(transformers.CLIPTextModel, clip_cfg),
      "t5-v1_1-xxl": _count_reference(transformers.T5EncoderModel,
                                      transformers.T5Config(vocab_size=32128, **xxl)),
      "umt5-xxl": _count_reference(transformers.UMT5EncoderModel,
                                   transformers.UMT5Config(vocab_size=256384, **xxl)),
  }
  assert {name: registry.get(name).num_params() for name in want} == want


def test_presets_match_reference_configs():
  clip_ref = transformers.CLIPTextConfig(
      vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
      num_attention_heads=12, max_position_embeddings=77, eos_token_id=2, hidden_act="quick_gelu")
  assert clip_text.CLIPTextConfig.from_transformers(clip_ref.to_dict()) == clip_text.PRESETS[
      "clip-vit-l-14-text"]
  umt5_ref = transformers.UMT5Config(vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240,
                                     num_layers=24, num_heads=64, feed_forward_proj="gated-gelu")
  assert t5.T5Config.from_transformers(umt5_ref.to_dict()) == t5.PRESETS["umt5-xxl"]


def test_input_errors(clip):
  _, config, params, _ = clip
  model = clip_text.CLIPTextModel(config)
  with pytest.raises(ValueError, match="max_length"):
    model.apply({"params": params}, np.zeros((1, LENGTH + 1), np.int32))
  with pytest.raises(ValueError, match="attention_mask"):
    model.apply({"params": params}, np.zeros((1, 4), np.int32), np.ones((1, 5)))
  with pytest.raises(ValueError, match="remat_policy"):
    t5.T5Config(remat_policy="sometimes")


@pytest.mark.parametrize("t5_model", ["umt5"], indirect=True)
def test_remat_policy_keeps_the_output(t5_model):
  import dataclasses

  _, ref, config, params = t5_model
  ids, mask = _inputs(1)
  remat = dataclasses.replace(config, remat_policy="full")
  a = t5.T5Encoder(config).apply({"params": params}, ids, mask)
  b = t5.T5Encoder(remat).apply({"params": params}, ids, mask)
  np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
  from tokenizers import models
  from tokenizers import pre_tokenizers
  from tokenizers import processors
  from tokenizers import Tokenizer

  words = ["<pad>", "</s>", "<unk>", "a", "red", "three", "moving", "left", "blue"]
  tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
  tok.pre_tokenizer = pre_tokenizers.Whitespace()
  tok.post_processor = processors.TemplateProcessing(single="$A </s>",
                                                     special_tokens=[("</s>", 1)])
  fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>",
                                              eos_token="</s>", unk_token="<unk>",
                                              model_max_length=8)
  path = tmp_path_factory.mktemp("tok") / "tokenizer"
  fast.save_pretrained(path)
  return path


def test_tokenizer_pads_and_truncates(tokenizer_dir):
  tokenizer = load_tokenizer(tokenizer_dir)
  ids, mask = tokenizer(["a red three moving left", "blue zebra"])
  assert tokenizer.max_length == 8 and ids.dtype == np.int32 and mask.dtype == bool
  np.testing.assert_array_equal(ids, [[3, 4, 5, 6, 7, 1, 0, 0], [8, 2, 1, 0, 0, 0, 0, 0]])
  np.testing.assert_array_equal(mask.sum(1), [6, 3])
  ids, mask = load_tokenizer(tokenizer_dir, max_length=3)("a red three moving left")
  np.testing.assert_array_equal(ids, [[3, 4, 1]])
  assert mask.all()


def test_tokenizer_errors(tokenizer_dir, tmp_path):
  with pytest.raises(ValueError, match="not a directory"):
    load_tokenizer(tmp_path / "missing")
  with pytest.raises(ValueError, match="cannot load a tokenizer"):
    load_tokenizer(tmp_path)
  with pytest.raises(ValueError, match="texts"):
    load_tokenizer(tokenizer_dir)([1, 2])
