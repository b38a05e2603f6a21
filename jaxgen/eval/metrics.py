"""Moving Digits metrics: attribute accuracies from the oracle and a Fréchet distance.

`evaluate(videos, attributes)` compares what the oracle reads in each video with the attributes
its prompt asked for (the dataset's `num_objects`, `digit`, `color`, `direction` fields), pairing
found and asked-for objects by the assignment that gets most attributes right. With paired
ground truth it also compares each object's path with the truth's, frame by frame: what a TSR
stage adds over frame repetition.
"""

from collections.abc import Mapping
import itertools
from typing import Any

import numpy as np

from jaxgen.eval import oracle

ATTRIBUTE_KEYS = ("digit", "color", "direction")
# Dataset px within which an object is on its path. At twice the frame rate the truth's in-between
# frame has moved md.SPEED / 2 = 1 px along each moving axis, which frame repetition misses.
TRACK_TOLERANCE = 0.5


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
  """Fréchet distance between Gaussians fitted to features a [N, D] and b [M, D].

  d² = |μa − μb|² + tr(Σa) + tr(Σb) − 2 tr((Σa^½ Σb Σa^½)^½) (Heusel et al. 2017, FID), with
  both square roots by symmetric eigendecomposition, so rank-deficient covariances are fine.
  """
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
    raise ValueError(f"a, b: expected features [N, D] and [M, D] with N, M >= 2, got "
                     f"{a.shape} and {b.shape}")
  mu_a, mu_b = a.mean(0), b.mean(0)
  cov_a, cov_b = np.cov(a, rowvar=False, ddof=1), np.cov(b, rowvar=False, ddof=1)
  cov_a, cov_b = np.atleast_2d(cov_a), np.atleast_2d(cov_b)
  w, v = np.linalg.eigh(cov_a)
  sqrt_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
  middle = sqrt_a @ cov_b @ sqrt_a
  trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
  d2 = ((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_sqrt
  return float(max(d2, 0.0))


def _mean(values: list) -> float:
  return float(np.mean(values)) if values else float("nan")


def _check(videos: np.ndarray, name: str) -> np.ndarray:
  videos = np.asarray(videos)
  if videos.ndim != 5 or videos.shape[-1] != 3 or videos.dtype != np.uint8:
    raise ValueError(f"{name}: expected uint8 [N, T, H, W, 3], got {videos.dtype} "
                     f"{videos.shape}")
  return videos


def oracle_features(videos: np.ndarray, rate: int = 1) -> np.ndarray:
  """The oracle's features float32 [N, oracle.FEATURE_DIM] of videos uint8 [N, T, H, W, 3]."""
  videos = _check(videos, "videos")
  return np.stack([oracle.video_features(v, oracle.read_video(v, rate)) for v in videos])


def match(targets: list[tuple[int, int, int]], readings: list[oracle.Reading]
          ) -> list[oracle.Reading | None]:
  """For each (digit, color, direction) target, its reading under the best one-to-one pairing."""
  def right(t, r):
    return 0 if r is None else (t[0] == r.digit) + (t[1] == r.color) + (t[2] == r.direction)
  options = list(readings) + [None] * len(targets)
  best = max(itertools.permutations(range(len(options)), len(targets)),
             key=lambda p: sum(right(t, options[i]) for t, i in zip(targets, p)))
  return [options[i] for i in best]


def _track(readings: list[list[oracle.Reading]], real_readings: list[list[oracle.Reading]]
           ) -> dict[str, float]:
  """How closely each object follows its path in the paired ground truth (see evaluate)."""
  hits, errors = [], []
  for found, real in zip(readings, real_readings):
    found = {r.color: r for r in found}
    for want in real:
      have = found.get(want.color)
      if have is None:
        hits.append(np.zeros(want.present.sum()))
        continue
      both = want.present & have.present
      distance = np.linalg.norm(have.centroids - want.centroids, axis=-1)
      errors.append(distance[both])
      hits.append((both & (distance <= TRACK_TOLERANCE))[want.present])
  hits = np.concatenate(hits) if hits else np.zeros(0)
  errors = np.concatenate(errors) if errors else np.zeros(0)
  return {"track_accuracy": float(hits.mean()) if hits.size else float("nan"),
          "track_error_px": float(errors.mean()) if errors.size else float("nan")}


def _by_num_objects(num: np.ndarray, digit_right: list[bool], all_right: list[bool]
                    ) -> dict[str, dict[str, float]]:
  """Digit and all-attributes accuracy over the videos of each object count; digit_right holds
  each video's num[i] objects in order."""
  digit_right, all_right = np.asarray(digit_right, bool), np.asarray(all_right, bool)
  return {str(n): {"digit_accuracy": _mean(digit_right[np.repeat(num == n, num)].tolist()),
                   "all_attributes_accuracy": _mean(all_right[num == n].tolist()),
                   "num_videos": int(np.sum(num == n))}
          for n in np.unique(num).tolist()}


def evaluate(videos: np.ndarray, attributes: Mapping[str, np.ndarray],
             real_videos: np.ndarray | None = None, rate: int = 1,
             paired: bool = False) -> dict[str, Any]:
  """Oracle metrics of videos uint8 [N, T, H, W, 3] against their prompts' attributes.

  `attributes`: num_objects int [N]; digit, color, direction int [N, MAX_OBJECTS] (-1 padded).
  `real_videos` uint8 [M, T, H, W, 3] (e.g. the test split): adds `frechet_distance` between the
  oracle's features of `videos` and of them. `rate`: frames per dataset frame of both (2 after a
  TSR stage); larger frames are read at their own scale (oracle.read_video).
  `paired`: real video i is the ground truth of video i (a TSR/SSR stage's output and the video
  its input was made from). Adds how closely each object, paired by colour, follows its path
  there, over the frames where the truth shows it: `track_accuracy`, the share where it lies
  within TRACK_TOLERANCE dataset px (absent counts as a miss), and `track_error_px`, the mean
  distance where both show it. Frame repetition misses every in-between frame by a step.
  A single frame (an image) shows no motion: it is judged on digit and colour only, and its
  all-attributes accuracy is over those two.
  `by_num_objects` repeats the digit and all-attributes accuracies over the videos of each object
  count: where a model fails to bind each digit to its own colour and path, the two-digit videos
  fall behind the one-digit ones.
  """
  videos = _check(videos, "videos")
  if real_videos is not None:
    real_videos = _check(real_videos, "real_videos")
  if paired and (real_videos is None or real_videos.shape != videos.shape):
    raise ValueError(f"paired=True: expected real_videos of the videos' shape {videos.shape}, "
                     f"got {None if real_videos is None else real_videos.shape}")
  missing = [k for k in ("num_objects", *ATTRIBUTE_KEYS) if k not in attributes]
  if missing:
    raise ValueError(f"attributes: expected keys num_objects, digit, color, direction; "
                     f"missing {missing}")
  num = np.asarray(attributes["num_objects"]).reshape(-1)
  fields = {k: np.asarray(attributes[k]) for k in ATTRIBUTE_KEYS}
  for k, v in fields.items():
    if v.ndim != 2 or len(v) != len(videos):
      raise ValueError(f"attributes[{k!r}]: expected [{len(videos)}, max objects], got "
                       f"{v.shape}")
  if len(num) != len(videos) or np.any(num < 0) or np.any(num > fields["digit"].shape[1]):
    raise ValueError(f"attributes['num_objects']: expected one count per video (of "
                     f"{len(videos)}), each in [0, {fields['digit'].shape[1]}], got {num.tolist()}")
  judged = ATTRIBUTE_KEYS if videos.shape[1] > 1 else ("digit", "color")
  right = {k: [] for k in judged}
  frame_right, consistency, all_right, count_right = [], [], [], []
  all_readings = [oracle.read_video(video, rate) for video in videos]
  for i, readings in enumerate(all_readings):
    # An attribute not judged (a still's direction) is None: it counts for no pairing.
    targets = [tuple(int(fields[k][i, j]) if k in judged else None for k in ATTRIBUTE_KEYS)
               for j in range(num[i])]
    video_right = len(readings) == len(targets)
    for target, reading in zip(targets, match(targets, readings)):
      got = (None,) * 3 if reading is None else (reading.digit, reading.color, reading.direction)
      for k, want, have in zip(ATTRIBUTE_KEYS, target, got):
        if k in judged:
          right[k].append(want == have)
          video_right &= want == have
      consistency.append(0.0 if reading is None else reading.consistency)
      frame_right.append(0.0 if reading is None else np.mean(reading.frame_digits == target[0]))
    all_right.append(video_right)
    count_right.append(len(readings) == len(targets))
  out = {f"{k}_accuracy": _mean(v) for k, v in right.items()}
  out.update(
      all_attributes_accuracy=_mean(all_right),
      frame_digit_accuracy=_mean(frame_right),
      digit_consistency=_mean(consistency),
      object_count_accuracy=_mean(count_right),
      num_videos=len(videos),
      by_num_objects=_by_num_objects(num, right["digit"], all_right))
  if real_videos is not None:
    # Each real video is read once, for its features and, when paired, its paths.
    real_readings = [oracle.read_video(v, rate) for v in real_videos]
    features = [np.stack([oracle.video_features(v, r) for v, r in zip(vs, rs)])
                for vs, rs in ((videos, all_readings), (real_videos, real_readings))]
    out["frechet_distance"] = frechet_distance(*features)
    if paired:
      out.update(_track(all_readings, real_readings))
  return out
