"""Moving Digits: captioned videos of coloured handwritten digits bouncing around a black frame.

Pure numpy. Example `i` of split `s` is a pure function of `(seed, s, i)`. The glyphs are
scikit-learn's bundled 8x8 handwritten digits (`load_digits`, no download), partitioned once by a
fixed permutation so that the test split (and the oracle's evaluation) uses handwriting that the
train split never shows.
"""

import dataclasses
import functools

import numpy as np

from jaxgen.data import captions
from jaxgen.pipelines.upsample import bilinear_matrix

NUM_FRAMES = 17  # 4n + 1, the frame count a causal video VAE with 4x temporal compression wants.
SIZE = 32  # frame height and width
GLYPH_SIZE = 12  # the 8x8 glyphs are drawn at 1.5x: legible, and leaves 20 px to move in
SPEED = 2  # px per frame along each moving axis
FREE_FRAMES = 4  # no bounce during the first transitions, so the start shows the direction
MAX_OBJECTS = 2
SPLITS = ("train", "test")
TEST_GLYPH_FRACTION = 0.2
# Two digits may cross, but not in the first frames (where the direction shows) and only briefly:
# a frame counts as overlapped when the glyph masks share more than OVERLAP_PIXELS pixels.
OVERLAP_ALPHA = 0.25
OVERLAP_PIXELS = 2
MAX_OVERLAP_FRAMES = 6
_CANDIDATES, _MAX_TRIES = 64, 32
_GLYPH_SPLIT_SEED = 20240917  # fixed forever: the glyph split must not depend on the data seed

# Distinct hues, each with a channel at 255, so the glyph intensity is the max channel.
COLORS = (
    ("red", (255, 0, 0)),
    ("orange", (255, 128, 0)),
    ("yellow", (255, 255, 0)),
    ("green", (0, 255, 0)),
    ("cyan", (0, 255, 255)),
    ("blue", (0, 0, 255)),
    ("magenta", (255, 0, 255)),
    ("white", (255, 255, 255)),
)
COLOR_NAMES = tuple(name for name, _ in COLORS)
PALETTE = np.array([rgb for _, rgb in COLORS], np.uint8)  # [8, 3]

# (dy, dx) with y pointing down, as in image rows.
DIRECTIONS = (
    ("up", (-1, 0)),
    ("down", (1, 0)),
    ("left", (0, -1)),
    ("right", (0, 1)),
    ("up_left", (-1, -1)),
    ("up_right", (-1, 1)),
    ("down_left", (1, -1)),
    ("down_right", (1, 1)),
)
DIRECTION_NAMES = tuple(name for name, _ in DIRECTIONS)
DIRECTION_VECTORS = np.array([v for _, v in DIRECTIONS], np.int32)  # [8, 2]


@dataclasses.dataclass(frozen=True)
class DigitObject:
  """One moving digit: its glyph, colour, direction and top-left start (y, x)."""
  digit: int
  glyph: int  # index into sklearn's load_digits
  color: int  # index into COLORS
  direction: int  # index into DIRECTIONS
  start: tuple[int, int]


@functools.cache
def glyphs() -> tuple[np.ndarray, np.ndarray]:
  """All bundled glyphs: images float32 [1797, 8, 8] in [0, 1], labels int32 [1797]."""
  from sklearn.datasets import load_digits  # slow import, only when glyphs are needed
  data = load_digits()
  return (data.images / 16.0).astype(np.float32), data.target.astype(np.int32)


@functools.cache
def glyph_indices(split: str) -> np.ndarray:
  """Sorted glyph indices of a split, stratified by digit; train and test are disjoint."""
  if split not in SPLITS:
    raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
  _, labels = glyphs()
  rng = np.random.default_rng(_GLYPH_SPLIT_SEED)
  test = []
  for d in range(10):
    members = rng.permutation(np.flatnonzero(labels == d))
    test.append(members[:int(round(TEST_GLYPH_FRACTION * len(members)))])
  test = np.sort(np.concatenate(test))
  if split == "test":
    return test
  return np.setdiff1d(np.arange(len(labels)), test)


def resize(image: np.ndarray, size: int) -> np.ndarray:
  """Bilinear resize of image [h, w] to [size, size] (float32 weights: the data's precision)."""
  mh, mw = (bilinear_matrix(n, size).astype(np.float32) for n in image.shape)
  return mh @ image @ mw.T


def glyph_alpha(glyph: int, scale: int = 1) -> np.ndarray:
  """Coverage of a glyph drawn at GLYPH_SIZE·scale: float32 [GLYPH_SIZE·scale]² in [0, 1]."""
  return np.clip(resize(glyphs()[0][glyph], GLYPH_SIZE * scale), 0.0, 1.0)


def trajectory(start: np.ndarray, direction: int, num_frames: int = NUM_FRAMES, *,
               scale: int = 1, rate: int = 1) -> np.ndarray:
  """Top-left corners int32 [..., T, 2] from start [..., 2], moving at SPEED with bounces.

  `scale` draws the same scene `scale` times larger (corners ×scale) and `rate` samples it `rate`
  times per frame (frame t is at time t / rate): the ground truth of spatial and temporal
  super-resolution. scale * SPEED must be a multiple of rate, so corners stay on the pixel grid.
  """
  _check_scale_rate(scale, rate)
  # Positions in units of 1/rate px stay integers; bouncing is reflection: unfold the segment
  # [0, room] into a triangle wave of period 2*room.
  room = (SIZE - GLYPH_SIZE) * rate  # top-left positions live in [0, room]
  steps = SPEED * DIRECTION_VECTORS[direction] * np.arange(num_frames)[:, None]  # [T, 2]
  free = np.asarray(start)[..., None, :] * rate + steps
  phase = np.mod(free, 2 * room)
  folded = np.where(phase <= room, phase, 2 * room - phase)
  return (folded * scale // rate).astype(np.int32)


def _check_scale_rate(scale: int, rate: int) -> None:
  if not isinstance(scale, (int, np.integer)) or scale < 1:
    raise ValueError(f"scale={scale!r}; expected an integer >= 1")
  if not isinstance(rate, (int, np.integer)) or rate < 1 or (SPEED * scale) % rate:
    raise ValueError(f"rate={rate!r}; expected an integer >= 1 dividing SPEED * scale = "
                     f"{SPEED * scale}, so that every frame's corners are whole pixels")


def _sample_starts(rng: np.random.Generator, direction: int, n: int) -> np.ndarray:
  """Top-left starts int [n, 2] from which FREE_FRAMES steps go without a bounce."""
  room, travel = SIZE - GLYPH_SIZE, SPEED * DIRECTION_VECTORS[direction] * FREE_FRAMES
  lo, hi = np.maximum(0, -travel), np.minimum(room, room - travel)
  return rng.integers(lo, hi + 1, size=(n, 2))


def _overlap_table(glyph1: int, glyph2: int) -> np.ndarray:
  """Pixels int [2G-1, 2G-1] shared by two glyph masks, indexed by offset (p2 - p1) + G - 1."""
  g = GLYPH_SIZE
  m1, m2 = (glyph_alpha(i) > OVERLAP_ALPHA for i in (glyph1, glyph2))
  padded = np.pad(m1, g - 1).astype(np.int32)
  windows = np.lib.stride_tricks.sliding_window_view(padded, (g, g))
  return np.einsum("abij,ij->ab", windows, m2.astype(np.int32))


def _overlaps(table: np.ndarray, directions: tuple[int, int], starts1: np.ndarray,
              starts2: np.ndarray) -> np.ndarray:
  """Frames bool [..., T] in which two digits (glyph overlap `table`) overlap."""
  g = GLYPH_SIZE
  offsets = trajectory(starts2, directions[1]) - trajectory(starts1, directions[0])
  near = (np.abs(offsets) < g).all(-1)
  shared = np.where(near, table[np.clip(offsets[..., 0] + g - 1, 0, 2 * g - 2),
                                np.clip(offsets[..., 1] + g - 1, 0, 2 * g - 2)], 0)
  return shared > OVERLAP_PIXELS


def overlapped_frames(first: DigitObject, second: DigitObject) -> np.ndarray:
  """Frames bool [T] in which the two digits share more than OVERLAP_PIXELS pixels."""
  return _overlaps(_overlap_table(first.glyph, second.glyph), (first.direction, second.direction),
                   np.asarray(first.start), np.asarray(second.start))


def _clear_starts(rng: np.random.Generator, glyph_ids: tuple[int, int],
                  directions: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
  """Starts for two digits that do not overlap early and overlap in few frames."""
  table = _overlap_table(*glyph_ids)
  best, best_score = None, None
  for _ in range(_MAX_TRIES):
    s1, s2 = (_sample_starts(rng, d, _CANDIDATES) for d in directions)
    overlapped = _overlaps(table, directions, s1, s2)  # [K, T]
    early = overlapped[:, :FREE_FRAMES + 1].sum(-1)
    ok = (early == 0) & (overlapped.sum(-1) <= MAX_OVERLAP_FRAMES)
    if ok.any():
      k = int(np.argmax(ok))
      return s1[k], s2[k]
    # Kept only if no candidate ever passes (not seen in practice): the least overlapped.
    score = early * NUM_FRAMES + overlapped.sum(-1)
    k = int(np.argmin(score))
    if best_score is None or score[k] < best_score:
      best, best_score = (s1[k], s2[k]), score[k]
  return best


def sample_objects(rng: np.random.Generator, split: str) -> list[DigitObject]:
  """One or two digits with distinct colours; uniform digits, glyphs, directions."""
  _, labels = glyphs()
  pool = glyph_indices(split)
  num = int(rng.integers(1, MAX_OBJECTS + 1))
  colors = [int(c) for c in rng.choice(len(COLORS), size=num, replace=False)]
  digits = [int(d) for d in rng.integers(10, size=num)]
  glyph_ids = []
  for digit in digits:
    candidates = pool[labels[pool] == digit]
    glyph_ids.append(int(candidates[rng.integers(len(candidates))]))
  directions = [int(d) for d in rng.integers(len(DIRECTIONS), size=num)]
  if num == 1:
    starts = [_sample_starts(rng, directions[0], 1)[0]]
  else:
    # Rejection sampling of positions only, so digits, colours and directions stay uniform.
    starts = _clear_starts(rng, tuple(glyph_ids), tuple(directions))
  return [DigitObject(d, g, c, r, (int(s[0]), int(s[1])))
          for d, g, c, r, s in zip(digits, glyph_ids, colors, directions, starts)]


def render(objects: list[DigitObject], num_frames: int = NUM_FRAMES, *, scale: int = 1,
           rate: int = 1) -> np.ndarray:
  """Video uint8 [T, SIZE·scale, SIZE·scale, 3]; later objects are composited over earlier ones.

  scale, rate: see `trajectory`; with scale=1, rate=1 this is the dataset's rendering.
  """
  size, glyph_size = SIZE * scale, GLYPH_SIZE * scale
  video = np.zeros((num_frames, size, size, 3), np.float32)
  for obj in objects:
    alpha = glyph_alpha(obj.glyph, scale)[..., None]
    color = PALETTE[obj.color].astype(np.float32)
    track = trajectory(obj.start, obj.direction, num_frames, scale=scale, rate=rate)
    for t, (y, x) in enumerate(track):
      patch = video[t, y:y + glyph_size, x:x + glyph_size]
      patch[...] = alpha * color + (1 - alpha) * patch  # "over" compositing
  return np.round(video).astype(np.uint8)


def location(start: tuple[int, int]) -> str:
  """The third of the frame (captions.LOCATIONS) a digit starting at top-left `start` is in."""
  room = SIZE - GLYPH_SIZE
  row, col = (min(2, v * 3 // (room + 1)) for v in start)
  return captions.LOCATIONS[3 * row + col]


def describe(objects: list[DigitObject], rng: np.random.Generator) -> str:
  """A random caption for the objects from the paraphrase grammar."""
  return captions.caption([(o.digit, COLOR_NAMES[o.color], DIRECTION_NAMES[o.direction],
                            location(o.start)) for o in objects], rng)


def attributes(objects: list[DigitObject]) -> dict[str, np.ndarray]:
  """Structured attributes, padded with -1 to MAX_OBJECTS: digit, color, direction, glyph [2]."""
  out = {"num_objects": np.int32(len(objects))}
  for key in ("digit", "color", "direction", "glyph"):
    values = [getattr(o, key) for o in objects]
    out[key] = np.array(values + [-1] * (MAX_OBJECTS - len(values)), np.int32)
  return out


def _example_rng(seed: int, split: str, index: int) -> np.random.Generator:
  """The generator example `index` of `split` draws its objects, then its caption, from."""
  if split not in SPLITS:
    raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
  if index < 0 or seed < 0:
    raise ValueError(f"seed, index: expected non-negative integers, got {seed}, {index}")
  return np.random.default_rng([seed, SPLITS.index(split), index])


def example_objects(seed: int, split: str, index: int) -> list[DigitObject]:
  """The digits of example `index` of `split`, start positions included."""
  return sample_objects(_example_rng(seed, split, index), split)


def example(seed: int, split: str, index: int, *, scale: int = 1,
            rate: int = 1) -> dict[str, np.ndarray | str]:
  """Example `index` of `split`: video uint8 [17, 32, 32, 3], caption and attributes.

  scale, rate > 1 render the same example larger and at a higher frame rate, as the ground truth
  of the cascade's SSR and TSR stages: video [17·rate, 32·scale, 32·scale, 3], whose every
  rate-th frame is (at scale 1) the dataset's frame.
  """
  _check_scale_rate(scale, rate)
  rng = _example_rng(seed, split, index)
  objects = sample_objects(rng, split)
  video = render(objects, NUM_FRAMES * rate, scale=scale, rate=rate)
  return {"video": video, "caption": describe(objects, rng), **attributes(objects)}


def vocabulary() -> list[str]:
  """Every word a Moving Digits caption can contain."""
  return captions.vocabulary(COLOR_NAMES)
