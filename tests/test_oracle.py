"""The Moving Digits oracle and metrics: reliable on real held-out videos, low on corrupted ones."""

import dataclasses

import numpy as np
import pytest

from jaxgen.data import moving_digits as md
from jaxgen.eval import metrics, oracle

N = 120  # held-out videos per set: enough for the >= 95% bounds, quick on 2 cores
ATTRIBUTES = ("num_objects", "digit", "color", "direction")


@pytest.fixture(scope="module")
def real():
  """Test-split (held-out glyph) videos, their attributes and their objects."""
  objects = [md.sample_objects(np.random.default_rng([0, 1, i]), "test") for i in range(N)]
  examples = [md.example(0, "test", i) for i in range(N)]
  videos = np.stack([e["video"] for e in examples])
  assert np.array_equal(videos[0], md.render(objects[0]))  # the objects are the examples'
  return videos, {k: np.stack([e[k] for e in examples]) for k in ATTRIBUTES}, objects


@pytest.fixture(scope="module")
def real_scores(real):
  videos, attributes, _ = real
  return metrics.evaluate(videos, attributes)


def test_oracle_is_reliable_on_held_out_videos(real_scores):
  print("oracle on held-out videos:", real_scores)
  assert real_scores["digit_accuracy"] >= 0.95
  assert real_scores["color_accuracy"] >= 0.95
  assert real_scores["direction_accuracy"] >= 0.95
  assert real_scores["all_attributes_accuracy"] >= 0.9
  assert real_scores["digit_consistency"] >= 0.9
  assert real_scores["frame_digit_accuracy"] >= 0.9
  assert real_scores["object_count_accuracy"] >= 0.95
  assert real_scores["num_videos"] == N


def test_oracle_reads_larger_and_faster_renderings():
  """At the cascade's output sizes (2x frames, 2x pixels) ground truth still reads near 100%."""
  examples = [md.example(0, "test", i, scale=2, rate=2) for i in range(40)]
  videos = np.stack([e["video"] for e in examples])
  scores = metrics.evaluate(videos, {k: np.stack([e[k] for e in examples]) for k in ATTRIBUTES},
                            rate=2)
  assert scores["all_attributes_accuracy"] >= 0.9 and scores["direction_accuracy"] >= 0.95
  # Read at the wrong frame rate, the speed (not the direction) is off by the factor.
  fast = oracle.read_video(videos[0], rate=2)
  slow = oracle.read_video(videos[0])
  assert np.allclose(np.abs(fast[0].velocity).max(), md.SPEED, atol=0.2)
  assert np.allclose(np.abs(slow[0].velocity).max(), md.SPEED / 2, atol=0.2)


def test_track_sees_what_frame_repetition_misses():
  """At twice the frame rate, repeated frames are off the truth's path every second frame."""
  examples = [md.example(0, "test", i, rate=2) for i in range(20)]
  truth = np.stack([e["video"] for e in examples])
  attributes = {k: np.stack([e[k] for e in examples]) for k in ATTRIBUTES}
  repeated = np.repeat(truth[:, ::2], 2, axis=1)
  track = lambda v: {k: metrics.evaluate(v, attributes, truth, rate=2, paired=True)[k]
                     for k in ("track_accuracy", "track_error_px")}
  assert track(truth) == {"track_accuracy": 1.0, "track_error_px": 0.0}
  naive = track(repeated)
  print("frame repetition:", naive)
  # Objects moving along an axis are 1 px off, diagonal ones 1.4 px, on the repeated frames.
  assert 0.45 <= naive["track_accuracy"] <= 0.6
  assert 0.5 <= naive["track_error_px"] <= 0.7
  assert "track_accuracy" not in metrics.evaluate(truth, attributes, truth, rate=2)
  with pytest.raises(ValueError, match="paired=True"):
    metrics.evaluate(truth[:, ::2], attributes, truth, rate=2, paired=True)


def test_classifier_reads_held_out_glyphs():
  _, labels = md.glyphs()
  test = md.glyph_indices("test")
  x = np.stack([oracle.crop_features(oracle._glyph_window(g)) for g in test])
  accuracy = (oracle.classifier().predict(x) == labels[test]).mean()
  print("held-out glyph accuracy:", accuracy)
  assert accuracy >= 0.97


def test_shuffled_frames_lose_the_direction(real, real_scores):
  videos, attributes, _ = real
  rng = np.random.default_rng(0)
  shuffled = np.stack([v[rng.permutation(len(v))] for v in videos])
  scores = metrics.evaluate(shuffled, attributes)
  assert scores["direction_accuracy"] < 0.3
  assert scores["all_attributes_accuracy"] < 0.3
  assert scores["color_accuracy"] == real_scores["color_accuracy"]
  assert scores["frame_digit_accuracy"] == real_scores["frame_digit_accuracy"]


def test_first_frames_are_judged_on_digit_and_colour(real):
  """An image shows no motion: evaluate leaves out the direction, and all-attributes covers the
  digit and colour; recolouring still costs the colour."""
  videos, attributes, objects = real
  scores = metrics.evaluate(videos[:, :1], attributes)
  assert "direction_accuracy" not in scores
  assert scores["digit_accuracy"] >= 0.95 and scores["color_accuracy"] >= 0.95
  assert scores["all_attributes_accuracy"] >= 0.95
  recoloured = np.stack([md.render([dataclasses.replace(o, color=(o.color + 3) % len(md.COLORS))
                                    for o in objs], 1) for objs in objects])
  scores = metrics.evaluate(recoloured, attributes)
  assert scores["color_accuracy"] < 0.05 and scores["all_attributes_accuracy"] < 0.05


def test_recoloured_videos_lose_the_colour(real):
  _, attributes, objects = real
  # Shifting every colour by the same palette step keeps two digits' colours distinct.
  recoloured = np.stack([md.render([dataclasses.replace(o, color=(o.color + 3) % len(md.COLORS))
                                    for o in objs]) for objs in objects])
  scores = metrics.evaluate(recoloured, attributes)
  assert scores["color_accuracy"] < 0.05
  assert scores["digit_accuracy"] >= 0.95 and scores["direction_accuracy"] >= 0.95
  assert scores["all_attributes_accuracy"] < 0.05


def test_wrong_digit_glyphs_lose_the_digit(real):
  _, attributes, objects = real
  _, labels = md.glyphs()
  pool = md.glyph_indices("test")
  rng = np.random.default_rng(1)

  def wrong(o):
    digit = (o.digit + 1 + rng.integers(9)) % 10
    candidates = pool[labels[pool] == digit]
    return dataclasses.replace(o, digit=int(digit), glyph=int(rng.choice(candidates)))

  scores = metrics.evaluate(np.stack([md.render([wrong(o) for o in objs]) for objs in objects]),
                            attributes)
  assert scores["digit_accuracy"] < 0.1
  assert scores["color_accuracy"] >= 0.95 and scores["direction_accuracy"] >= 0.95


def test_by_num_objects_shows_digits_drawn_alike(real):
  """Two-digit videos whose second digit copies the first (a binding failure) lose half their
  digits, and all their all-attributes accuracy, while the one-digit videos keep theirs."""
  _, attributes, objects = real

  def alike(objs):
    return [objs[0]] + [dataclasses.replace(o, digit=objs[0].digit, glyph=objs[0].glyph)
                        for o in objs[1:] if o.digit != objs[0].digit]
  # Videos of two equal digits are left out: there, nothing changes.
  keep = [i for i, objs in enumerate(objects) if len(set(o.digit for o in objs)) == len(objs)]
  videos = np.stack([md.render(alike(objects[i])) for i in keep])
  scores = metrics.evaluate(videos, {k: v[keep] for k, v in attributes.items()})
  one, two = scores["by_num_objects"]["1"], scores["by_num_objects"]["2"]
  assert one["num_videos"] + two["num_videos"] == len(keep) and min(one["num_videos"],
                                                                    two["num_videos"]) > 20
  assert one["digit_accuracy"] >= 0.95 and one["all_attributes_accuracy"] >= 0.9
  assert 0.4 <= two["digit_accuracy"] <= 0.55 and two["all_attributes_accuracy"] < 0.1


def _noisy(videos, sigma, seed=0):
  noise = np.random.default_rng(seed).normal(0, sigma, videos.shape)
  return np.clip(videos + noise, 0, 255).astype(np.uint8)


def test_noise_ruins_the_reading(real):
  videos, attributes, _ = real
  scores = metrics.evaluate(_noisy(videos[:60], 80), {k: v[:60] for k, v in attributes.items()})
  assert scores["all_attributes_accuracy"] < 0.1
  assert scores["digit_accuracy"] < 0.5


def test_frechet_distance_grows_with_corruption(real):
  videos = real[0][:60]
  features = metrics.oracle_features(videos)
  assert features.shape == (60, oracle.FEATURE_DIM) and np.isfinite(features).all()
  assert metrics.frechet_distance(features, features) < 1e-6
  # Against the same videos, corrupted more and more.
  noisy = [metrics.frechet_distance(features, metrics.oracle_features(_noisy(videos, s)))
           for s in (10, 30, 60)]
  assert 1e-3 < noisy[0] < noisy[1] < noisy[2]
  # Against other real videos: strong corruption is far beyond their sampling distance.
  other_real = metrics.oracle_features(np.stack(
      [md.example(1, "test", i)["video"] for i in range(60)]))
  baseline = metrics.frechet_distance(features, other_real)
  rng = np.random.default_rng(0)
  shuffled = metrics.frechet_distance(features, metrics.oracle_features(
      np.stack([v[rng.permutation(len(v))] for v in videos])))
  print(f"Fréchet distances: real vs other real {baseline:.3f}, frames shuffled "
        f"{shuffled:.3f}, noise 10/30/60 {noisy}")
  assert shuffled > 2 * baseline and noisy[2] > 5 * baseline


def test_evaluate_reports_frechet_distance(real):
  videos, attributes, _ = real
  scores = metrics.evaluate(videos[:20], {k: v[:20] for k, v in attributes.items()},
                            real_videos=videos[:20])
  assert scores["frechet_distance"] < 1e-6


def test_frechet_distance_formula():
  rng = np.random.default_rng(0)
  # 1-D Gaussians: d² = (μa − μb)² + (σa − σb)².
  a, b = rng.normal(size=(500, 1)), 3.0 + 2.0 * rng.normal(size=(500, 1))
  expected = (a.mean() - b.mean()) ** 2 + (a.std(ddof=1) - b.std(ddof=1)) ** 2
  np.testing.assert_allclose(metrics.frechet_distance(a, b), expected, rtol=1e-9)
  # Against scipy's general matrix square root, for full-rank covariances.
  from scipy import linalg
  a = rng.normal(size=(400, 6)) @ rng.normal(size=(6, 6))
  b = rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6)) + 1.0
  ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
  reference = (((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(ca) + np.trace(cb)
               - 2 * np.trace(linalg.sqrtm(ca @ cb).real))
  np.testing.assert_allclose(metrics.frechet_distance(a, b), reference, rtol=1e-8)
  with pytest.raises(ValueError, match="features"):
    metrics.frechet_distance(a, b[:, :3])


def test_match_pairs_objects_by_most_attributes():
  r = lambda digit, color, direction: oracle.Reading(
      color=color, digit=digit, direction=direction, frame_digits=np.zeros(1, np.int32),
      scores=np.zeros(10), velocity=np.zeros(2), step=0.0, centroids=np.zeros((1, 2)),
      present=np.ones(1, bool), pixels=1.0)
  a, b = r(3, 0, 1), r(5, 2, 4)
  assert metrics.match([(5, 2, 4), (3, 0, 1)], [a, b]) == [b, a]
  assert metrics.match([(5, 2, 4), (3, 0, 1)], [a]) == [None, a]
  assert metrics.match([(3, 0, 1)], [b, a]) == [a]
  assert metrics.match([], [a]) == []


def test_direction_of_velocity():
  for index, (_, v) in enumerate(md.DIRECTIONS):
    assert oracle.direction_of(md.SPEED * np.asarray(v, np.float32)) == index
  assert oracle.direction_of(np.array([0.2, -0.3])) == -1


def test_evaluate_rejects_bad_input(real):
  videos, attributes, _ = real
  with pytest.raises(ValueError, match="videos"):
    metrics.evaluate(videos.astype(np.float32), attributes)
  with pytest.raises(ValueError, match="videos"):
    metrics.evaluate(videos[0], attributes)
  with pytest.raises(ValueError, match="attributes"):
    metrics.evaluate(videos[:3], attributes)
  with pytest.raises(ValueError, match="missing"):
    metrics.evaluate(videos, {"digit": attributes["digit"]})
  with pytest.raises(ValueError, match="real_videos"):
    metrics.evaluate(videos[:2], {k: v[:2] for k, v in attributes.items()},
                     real_videos=videos[0])
