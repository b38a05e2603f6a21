"""Moving Digits: generator, captions, tfds builder, mesh loader and tokenizer."""

import collections
import itertools
import re
import sys

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec
import numpy as np
import pytest

from jaxgen.data import captions, loader, moving_digits as md, moving_digits_tfds, vocab

KEYS = ("video", "caption", "num_objects", "digit", "color", "direction", "glyph")


def _same(a, b) -> bool:
  if isinstance(a, bytes):
    a = a.decode()
  return a == b if isinstance(b, str) else np.array_equal(np.asarray(a), b)


@pytest.fixture(scope="module")
def samples():
  """Objects of many train examples, without rendering (fast)."""
  return [md.sample_objects(np.random.default_rng([0, 0, i]), "train") for i in range(4000)]


@pytest.fixture(scope="module")
def tokenizer():
  return vocab.build_tokenizer()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  """A tiny dataset built into a tmp dir, and its builder."""
  builder = moving_digits_tfds.builder(
      tmp_path_factory.mktemp("tfds"), train_size=48, test_size=8, seed=7)
  builder.download_and_prepare()
  return builder


# --- generator ---------------------------------------------------------------------------------

def test_example_shapes_and_determinism():
  a, b = md.example(3, "train", 11), md.example(3, "train", 11)
  assert set(a) == set(KEYS)
  assert a["video"].shape == (md.NUM_FRAMES, md.SIZE, md.SIZE, 3) and a["video"].dtype == np.uint8
  assert md.NUM_FRAMES % 4 == 1
  assert all(_same(a[k], b[k]) for k in KEYS)
  for other in (md.example(4, "train", 11), md.example(3, "test", 11), md.example(3, "train", 12)):
    assert not np.array_equal(a["video"], other["video"])


def test_attributes_match_objects():
  for i in range(50):
    e = md.example(0, "train", i)
    n = int(e["num_objects"])
    assert n in (1, 2)
    for key in ("digit", "color", "direction", "glyph"):
      assert e[key].shape == (md.MAX_OBJECTS,) and e[key].dtype == np.int32
      assert np.all(e[key][n:] == -1) and np.all(e[key][:n] >= 0)
    _, labels = md.glyphs()
    assert np.array_equal(labels[e["glyph"][:n]], e["digit"][:n])
    assert len(set(e["color"][:n].tolist())) == n  # two digits never share a colour


def test_glyph_split_is_disjoint_and_covers_all():
  train, test = md.glyph_indices("train"), md.glyph_indices("test")
  _, labels = md.glyphs()
  assert len(np.intersect1d(train, test)) == 0
  assert len(train) + len(test) == len(labels) == 1797
  assert set(labels[test]) == set(range(10))
  assert 0.15 < len(test) / len(labels) < 0.25
  for split, pool in (("train", train), ("test", test)):
    used = [g for i in range(100) for g in md.example(0, split, i)["glyph"] if g >= 0]
    assert np.isin(used, pool).all()
  with pytest.raises(ValueError, match="split"):
    md.glyph_indices("validation")
  with pytest.raises(ValueError, match="split"):
    md.example(0, "val", 0)


def test_motion_stays_in_bounds_and_bounces():
  room = md.SIZE - md.GLYPH_SIZE
  rng = np.random.default_rng(0)
  bounced = 0
  for direction, (_, v) in enumerate(md.DIRECTIONS):
    starts = md._sample_starts(rng, direction, 200)
    track = md.trajectory(starts, direction)  # [200, T, 2]
    assert track.min() >= 0 and track.max() <= room
    step = np.diff(track, axis=1)
    assert np.all(np.abs(step) <= md.SPEED)
    # The first FREE_FRAMES steps go straight in the named direction.
    assert np.all(step[:, :md.FREE_FRAMES] == md.SPEED * np.asarray(v))
    # Later steps reverse on a wall: velocity sign flips, speed kept.
    flips = (np.sign(step[:, 1:]) * np.sign(step[:, :-1]) < 0).any(axis=(1, 2))
    bounced += flips.sum()
    for axis in range(2):
      if v[axis] == 0:
        assert np.all(step[..., axis] == 0)
  assert bounced > 100
  # A rendered digit is never clipped: its mass is the same in every frame.
  objects = [md.DigitObject(8, 5, 0, d, (0, room)) for d in (1, 6)]
  for obj in objects:
    video = md.render([obj]).astype(np.int64)
    assert len(set(video.sum((1, 2, 3)).tolist())) == 1


def test_larger_and_faster_renderings_are_the_same_scene():
  """scale/rate render the ground truth of the cascade's SSR/TSR stages: the same example."""
  from jaxgen.train.tasks import data
  base = md.example(0, "test", 5)
  fast = md.example(0, "test", 5, rate=2)
  large = md.example(0, "test", 5, scale=2)
  assert fast["video"].shape == (2 * md.NUM_FRAMES, md.SIZE, md.SIZE, 3)
  assert large["video"].shape == (md.NUM_FRAMES, 2 * md.SIZE, 2 * md.SIZE, 3)
  assert fast["caption"] == large["caption"] == base["caption"]
  assert np.array_equal(fast["video"][::2], base["video"])  # the odd frames are in between
  assert not np.array_equal(fast["video"][1::2], base["video"])
  area = large["video"].astype(np.float64).reshape(md.NUM_FRAMES, md.SIZE, 2, md.SIZE, 2, 3)
  error = np.abs(area.mean((2, 4)) - base["video"])  # 2x2 averages: the dataset, up to resampling
  assert error.mean() < 0.1 and error.max() <= 12
  with pytest.raises(ValueError, match="rate=3"):
    md.example(0, "test", 5, rate=3)  # 2 px per frame cannot be split into thirds
  source = data.Rendered(0, "test", 10, rate=2, clip_frames=6)
  clips = [source[i]["video"] for i in range(10)]
  assert len(source) == 10 and all(c.shape == (6, md.SIZE, md.SIZE, 3) for c in clips)
  for i, clip in enumerate(clips):  # clips start on a dataset frame
    video = md.example(0, "test", i, rate=2)["video"]
    starts = [s for s in range(0, len(video) - 5, 2) if np.array_equal(video[s:s + 6], clip)]
    assert starts, i
  assert np.array_equal(source[3]["video"], clips[3])  # deterministic
  with pytest.raises(ValueError, match="clip_frames=40"):
    data.Rendered(0, "test", 10, rate=2, clip_frames=40)


def test_every_attribute_combination_reachable(samples):
  singles = collections.Counter((o.digit, o.color, o.direction) for s in samples for o in s)
  assert len(singles) == 10 * len(md.COLORS) * len(md.DIRECTIONS)
  counts = collections.Counter(len(s) for s in samples)
  assert set(counts) == {1, 2} and 0.4 < counts[1] / len(samples) < 0.6
  pairs = {(a.direction, b.direction) for a, b in (s for s in samples if len(s) == 2)}
  assert len(pairs) == len(md.DIRECTIONS) ** 2
  colour_pairs = {(a.color, b.color) for a, b in (s for s in samples if len(s) == 2)}
  assert len(colour_pairs) == len(md.COLORS) * (len(md.COLORS) - 1)


def test_two_digits_overlap_rarely_and_never_early(samples):
  for a, b in itertools.islice((s for s in samples if len(s) == 2), 300):
    overlapped = md.overlapped_frames(a, b)
    assert overlapped.shape == (md.NUM_FRAMES,)
    assert not overlapped[:md.FREE_FRAMES + 1].any()
    assert overlapped.sum() <= md.MAX_OVERLAP_FRAMES
  # The overlap measure itself: a digit on top of itself overlaps in every frame.
  a = samples[0][0]
  assert md.overlapped_frames(a, a).all()


def test_captions_describe_the_attributes():
  for i in range(300):
    e = md.example(1, "train", i)
    text = captions.normalize(e["caption"])
    words = text.split()
    n = int(e["num_objects"])
    for d, c, r in zip(e["digit"][:n], e["color"][:n], e["direction"][:n]):
      assert md.COLOR_NAMES[c] in words
      assert str(d) in words or captions.DIGIT_WORDS[d] in words
      assert any(p in text for p in captions.DIRECTION_PHRASES[md.DIRECTION_NAMES[r]])
    # Articles agree with the next word ("an orange", "an 8", "a red").
    for article, following in zip(words, words[1:]):
      if article in ("a", "an"):
        assert (article == "an") == (following in ("orange", "eight", "8")), text


def test_captions_name_where_digits_start():
  assert [md.location(s) for s in ((0, 0), (6, 20), (7, 7), (13, 0), (14, 10), (20, 20))] == [
      "top left", "top right", "centre", "left", "bottom", "bottom right"]
  single, named = 0, 0
  for i in range(600):
    objects = md.example_objects(0, "train", i)
    if len(objects) != 1:
      continue
    single += 1
    text = captions.normalize(md.example(0, "train", i)["caption"])
    said = re.search(r"(?:from|starting at) the ([a-z ]+?)(?: in \w+)?$", text)
    if said:
      named += 1
      assert said.group(1) == md.location(objects[0].start), text
  assert single > 200 and 0.4 < named / single < 0.6  # LOCATION_PROBABILITY


def _all_object_phrases():
  """Every object phrase of the grammar, over all template/verb/phrase/numeral choices."""
  for finite, templates in ((False, captions.PARTICIPLE_TEMPLATES),
                            (True, captions.FINITE_TEMPLATES)):
    for template, verb, numeral in itertools.product(
        range(len(templates)), range(len(captions.VERBS)), (False, True)):
      for direction, phrases in captions.DIRECTION_PHRASES.items():
        for phrase in range(len(phrases)):
          yield captions.object_phrase(8, "orange", direction, finite=finite, template=template,
                                       verb=verb, phrase=phrase, numeral=numeral)
      for digit, color in itertools.product(range(10), md.COLOR_NAMES):
        yield captions.object_phrase(digit, color, "up", finite=finite, template=template,
                                     verb=verb, phrase=0, numeral=numeral)
      for location, phrase in itertools.product(captions.LOCATIONS,
                                                range(len(captions.LOCATION_PHRASES))):
        yield captions.object_phrase(8, "orange", "down_right", finite=finite, template=template,
                                     verb=verb, phrase=2, numeral=numeral, location=location,
                                     location_phrase=phrase)


# --- tokenizer ---------------------------------------------------------------------------------

def test_tokenizer_covers_every_caption(tokenizer):
  texts = list(_all_object_phrases())
  texts += [md.example(2, "train", i)["caption"] for i in range(300)]
  rng = np.random.default_rng(0)
  for pair in captions.PAIR_TEMPLATES:
    texts += [pair[1].format(*rng.choice(texts[:1000], 2)) for _ in range(50)]
  ids = tokenizer(texts)["input_ids"]
  assert not any(tokenizer.unk_token_id in row for row in ids)
  assert max(map(len, ids)) <= vocab.MAX_LENGTH
  # The vocabulary is exactly what the grammar produces: no dead words.
  seen = {w for t in texts for w in captions.normalize(t).split()}
  assert seen == set(md.vocabulary())
  assert len(tokenizer) == len(md.vocabulary()) + len(vocab.SPECIAL_TOKENS)


def test_tokenizer_round_trip_and_reload(tokenizer, tmp_path):
  from transformers import AutoTokenizer
  texts = ["A red 3, moving LEFT!", "the digit seven drifts up and to the right, in blue",
           "two digits: an orange 8 sliding down; a cyan nine heading up"]
  tokenizer.save_pretrained(tmp_path)
  reloaded = AutoTokenizer.from_pretrained(tmp_path)
  for text in texts:
    ids = tokenizer(text)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
    assert reloaded(text)["input_ids"] == ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == captions.normalize(text)
  batch = reloaded(texts, padding="max_length", max_length=vocab.MAX_LENGTH, return_tensors="np")
  assert batch["input_ids"].shape == (3, vocab.MAX_LENGTH)
  assert reloaded.pad_token_id == 0 and reloaded.unk_token_id == 1
  assert tokenizer("a purple 3")["input_ids"][2] == tokenizer.unk_token_id
  with pytest.raises(ValueError, match="words"):
    vocab.build_tokenizer(["Red"])


# --- tfds --------------------------------------------------------------------------------------

def test_tfds_builder_round_trip(tiny):
  # TensorFlow is not installed here, and nothing on this path needs it.
  assert "tensorflow" not in sys.modules
  sources = tiny.as_data_source()
  assert set(sources) == {"train", "test"}
  assert len(sources["train"]) == 48 and len(sources["test"]) == 8
  for split, source in sources.items():
    for i in range(len(source)):
      record, expected = source[i], md.example(7, split, i)
      assert all(_same(record[k], expected[k]) for k in KEYS), (split, i)
  assert tiny.info.file_format.value == "array_record"


def test_tfds_named_and_custom_configs(tmp_path):
  assert moving_digits_tfds.builder(tmp_path).builder_config.name == "default"
  assert moving_digits_tfds.builder(tmp_path, train_size=256, test_size=64).builder_config.name \
      == "tiny"
  custom = moving_digits_tfds.builder(tmp_path, train_size=10, test_size=2, seed=1)
  assert custom.builder_config.name == "train10_test2_seed1"
  with pytest.raises(ValueError, match="train_size"):
    moving_digits_tfds.builder(tmp_path, train_size=0)


# --- loader ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mesh():
  return Mesh(np.array(jax.devices()[:8]).reshape(4, 2), ("data", "fsdp"))


def test_loader_is_resumable(tiny, mesh, tokenizer):
  source = tiny.as_data_source("train")
  sharding = NamedSharding(mesh, PartitionSpec(("data", "fsdp")))
  make = lambda: loader.Loader(source, global_batch_size=16, sharding=sharding, seed=5,
                               tokenizer=tokenizer)
  run = list(make()(0, num_steps=7))  # 3 steps per epoch: crosses two epoch boundaries
  resumed = list(make()(4, num_steps=3))
  assert [s for s, _ in run] == list(range(7)) and [s for s, _ in resumed] == [4, 5, 6]
  for (_, a), (_, b) in zip(run[4:], resumed):
    assert a.keys() == b.keys()
    for key in a:
      np.testing.assert_array_equal(np.asarray(a[key]), np.asarray(b[key]))
  # Each epoch visits distinct examples; epochs are shuffled differently.
  epochs = [np.concatenate([np.asarray(run[s][1]["index"]) for s in range(e * 3, e * 3 + 3)])
            for e in range(2)]
  assert all(len(set(e.tolist())) == 48 for e in epochs)
  assert not np.array_equal(epochs[0], epochs[1])
  other_seed = loader.Loader(source, global_batch_size=16, sharding=sharding, seed=6)
  assert not np.array_equal(other_seed.indices(0), make().indices(0))


def test_loader_curriculum_draws_from_the_subset_first(tiny, mesh):
  source = tiny.as_data_source("train")
  sharding = NamedSharding(mesh, PartitionSpec(("data", "fsdp")))
  subset = np.arange(0, 48, 2)
  data = loader.Loader(source, global_batch_size=8, sharding=sharding, seed=5,
                       curriculum=(subset, 4, None))  # 3 steps per epoch of the subset
  first = np.concatenate([data.indices(s) for s in range(3)])
  assert sorted(first.tolist()) == subset.tolist()
  assert set(data.indices(3).tolist()) <= set(subset.tolist())
  plain = loader.Loader(source, global_batch_size=8, sharding=sharding, seed=5)
  np.testing.assert_array_equal(data.indices(4), plain.indices(4))  # then the usual order
  np.testing.assert_array_equal(np.asarray(data.batch(1)["index"]), data.indices(1))
  for bad in ((subset[:4], 4, None), (subset + 2, 4, None), (subset, -1, None), (subset, 4, []),
              (subset, 4, [0, 0]), (subset, 4, [8]), (subset[:2], 4, [0, 1, 2])):
    with pytest.raises(ValueError, match="curriculum"):
      loader.Loader(source, global_batch_size=8, sharding=sharding, curriculum=bad)


def test_loader_curriculum_rows_draw_from_the_subset_and_the_rest_as_usual(tiny, mesh):
  source = tiny.as_data_source("train")
  sharding = NamedSharding(mesh, PartitionSpec(("data", "fsdp")))
  subset, rows = np.arange(0, 48, 2), np.array([1, 4, 6])
  data = loader.Loader(source, global_batch_size=8, sharding=sharding, seed=5,
                       curriculum=(subset, 16, rows))  # 8 steps per epoch of the subset
  plain = loader.Loader(source, global_batch_size=8, sharding=sharding, seed=5)
  first = np.stack([data.indices(s) for s in range(8)])
  assert sorted(first[:, rows].ravel().tolist()) == subset.tolist()
  others = np.setdiff1d(np.arange(8), rows)
  for s in range(8):
    np.testing.assert_array_equal(first[s, others], plain.indices(s)[others])
  np.testing.assert_array_equal(data.indices(16), plain.indices(16))
  every_row = loader.Loader(source, global_batch_size=8, sharding=sharding, seed=5,
                            curriculum=(subset, 4, np.arange(8)))
  all_rows = loader.Loader(source, global_batch_size=8, sharding=sharding, seed=5,
                           curriculum=(subset, 4, None))
  for s in range(5):
    np.testing.assert_array_equal(every_row.indices(s), all_rows.indices(s))


def test_loader_batches_on_mesh(tiny, mesh, tokenizer):
  source = tiny.as_data_source("train")
  sharding = NamedSharding(mesh, PartitionSpec(("data", "fsdp")))
  data = loader.Loader(source, global_batch_size=16, sharding=sharding, seed=0,
                       tokenizer=tokenizer)
  batch = data.batch(2)
  assert batch["video"].shape == (16, md.NUM_FRAMES, md.SIZE, md.SIZE, 3)
  assert batch["video"].dtype == np.uint8
  assert batch["input_ids"].shape == batch["attention_mask"].shape == (16, vocab.MAX_LENGTH)
  for value in batch.values():
    assert value.sharding.is_equivalent_to(
        NamedSharding(mesh, PartitionSpec(("data", "fsdp"))), value.ndim)
    assert {s.data.shape[0] for s in value.addressable_shards} == {2}
  index = np.asarray(batch["index"])
  np.testing.assert_array_equal(index, data.indices(2))
  for row in (0, 9):
    expected = md.example(7, "train", int(index[row]))
    np.testing.assert_array_equal(np.asarray(batch["video"][row]), expected["video"])
    np.testing.assert_array_equal(np.asarray(batch["digit"][row]), expected["digit"])
    ids = np.asarray(batch["input_ids"][row])
    assert tokenizer.decode(ids, skip_special_tokens=True) == captions.normalize(
        expected["caption"])
  # Batch over one mesh axis only: the other axis holds replicas.
  data_only = loader.Loader(source, global_batch_size=8,
                            sharding=NamedSharding(mesh, PartitionSpec("data")))
  video = data_only.batch(0)["video"]
  assert {s.data.shape[0] for s in video.addressable_shards} == {2}
  with pytest.raises(ValueError, match="global_batch_size"):
    loader.Loader(source, global_batch_size=12, sharding=sharding)
  with pytest.raises(ValueError, match="global_batch_size"):
    loader.Loader(source, global_batch_size=64, sharding=sharding)
  with pytest.raises(ValueError, match="sharding"):
    loader.Loader(source, global_batch_size=16, sharding=None)


def test_process_rows_for_multi_host():
  # Two hosts with four devices each over a batch of 16: each reads its own contiguous half.
  index_map = {d: (slice(2 * d, 2 * d + 2),) for d in range(8)}
  host1 = {d: index_map[d] for d in range(4, 8)}
  np.testing.assert_array_equal(loader.process_rows(host1, 16), np.arange(8, 16))
  # Replicas (same rows on several devices) are read once.
  replicated = {0: (slice(0, 4),), 1: (slice(0, 4),), 2: (slice(None),)}
  np.testing.assert_array_equal(loader.process_rows(replicated, 8), np.arange(8))
