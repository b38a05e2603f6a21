"""The Moving Digits oracle: reads digit, colour and motion direction back from video pixels.

Bright pixels are labelled with the nearest palette colour by chromaticity (rgb / max channel, so
intensity falls out); each colour holding a fair share of the bright pixels is one object. Per
frame, the object's pixels give its centroid and a crop that is normalised like the training
glyphs (tight box, square, 8x8) and read by an RBF support-vector classifier fitted on the
train-split glyphs only. The direction is the sign pattern of the centroid's velocity over the
first frames, which the generator keeps free of bounces.
"""

import dataclasses
import functools

import numpy as np

from jaxgen.data import moving_digits as md

VALUE_THRESHOLD = 0.3  # a pixel is bright when its max channel exceeds this fraction of 255
MIN_SHARE = 0.1  # a colour is an object when it holds this share of the bright pixels
MIN_FRAME_PIXELS = 4  # an object is present in a frame with at least this many bright pixels
MAX_OBJECTS = 4  # more detected colours than this are dropped (smallest first)
CROP = md.GLYPH_SIZE + 4  # window around the centroid in which the digit is boxed
FEATURE_SIZE = 8  # crops are resampled to FEATURE_SIZE x FEATURE_SIZE, like load_digits
_OBJECT_DIM = 10 + 1 + 2 + 2 + 3  # per-object part of the video features
FEATURE_DIM = _OBJECT_DIM + len(md.PALETTE) + 3
_BLURS = (0.0, 0.6, 1.0)  # Gaussian sigmas (px) of the classifier's training copies
_CHROMA = md.PALETTE.astype(np.float32) / 255.0  # [8, 3], max channel 1


@dataclasses.dataclass(frozen=True)
class Reading:
  """What the oracle sees of one object in one video."""
  color: int  # palette index
  digit: int  # argmax of the frame-averaged classifier scores
  direction: int  # index into md.DIRECTIONS, -1 when no clear motion
  frame_digits: np.ndarray  # int [T], -1 where the object is absent
  scores: np.ndarray  # float [10], classifier decision values averaged over present frames
  # Lengths in the dataset's pixels and frames (see read_video), whatever the video's size.
  velocity: np.ndarray  # float [2], (dy, dx) px per frame over the first frames
  step: float  # mean centroid displacement (px) between consecutive frames where present
  centroids: np.ndarray  # float [T, 2], (y, x) per frame; meaningless where absent
  present: np.ndarray  # bool [T]
  pixels: float  # mean bright pixels per present frame

  @property
  def consistency(self) -> float:
    """Fraction of frames whose predicted digit is the video's majority digit."""
    return float(np.mean(self.frame_digits == self.digit))


def crop_features(value: np.ndarray) -> np.ndarray:
  """Normalised digit crop float32 [FEATURE_SIZE**2] from an intensity window [h, w] in [0, 1]."""
  mask = value > VALUE_THRESHOLD
  if not mask.any():
    return np.zeros(FEATURE_SIZE ** 2, np.float32)
  ys, xs = np.nonzero(mask)
  box = value[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
  # Square the box around its centre so thin digits (1, 7) keep their aspect, as in load_digits.
  side = max(box.shape)
  square = np.zeros((side, side), np.float32)
  oy, ox = (side - box.shape[0]) // 2, (side - box.shape[1]) // 2
  square[oy:oy + box.shape[0], ox:ox + box.shape[1]] = box
  out = md.resize(square, FEATURE_SIZE)
  return (out / max(float(out.max()), 1e-6)).ravel().astype(np.float32)


def _glyph_window(glyph: int, blur: float = 0.0) -> np.ndarray:
  """A train glyph drawn as the generator draws it (uint8 levels), optionally blurred."""
  alpha = np.pad(md.glyph_alpha(glyph), 2)
  if blur:
    from scipy import ndimage  # only for the augmentation
    alpha = ndimage.gaussian_filter(alpha, blur)
    alpha /= max(float(alpha.max()), 1e-6)
  return np.round(alpha * 255) / 255


@functools.cache
def classifier():
  """RBF-SVM on normalised crops of the train-split glyphs (plus blurred copies); cached."""
  from sklearn.svm import SVC  # slow import, only when the oracle is used
  _, labels = md.glyphs()
  train = md.glyph_indices("train")
  # Blurred copies make the oracle tolerant of the softer digits a generative model draws.
  x = np.stack([crop_features(_glyph_window(g, blur)) for blur in _BLURS for g in train])
  y = np.concatenate([labels[train]] * len(_BLURS))
  return SVC(C=10.0, gamma="scale", decision_function_shape="ovr").fit(x, y)


def colour_labels(video: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Intensity float32 [T, H, W] in [0, 1] and nearest palette index int [T, H, W] (-1: dark)."""
  video = np.asarray(video, np.float32)
  value = video.max(-1) / 255.0
  labels = np.full(value.shape, -1, np.int64)
  bright = value > VALUE_THRESHOLD
  rgb = video[bright]  # [n, 3]: only the bright pixels need a colour
  chroma = rgb / rgb.max(-1, keepdims=True)
  labels[bright] = ((chroma[:, None] - _CHROMA) ** 2).sum(-1).argmin(-1)
  return value, labels


def direction_of(velocity: np.ndarray) -> int:
  """Direction index of a velocity (dy, dx); -1 when it is (close to) still."""
  signs = np.where(np.abs(velocity) >= md.SPEED / 2, np.sign(velocity), 0).astype(np.int32)
  match = np.flatnonzero((md.DIRECTION_VECTORS == signs).all(-1))
  return int(match[0]) if len(match) else -1


def _velocity(centroids: np.ndarray, present: np.ndarray, rate: int = 1) -> np.ndarray:
  """Least-squares (dy, dx) per frame over the first bounce-free frames; 0 if too few."""
  n = min(md.FREE_FRAMES * rate + 1, len(present))
  keep = present[:n]
  if keep.sum() < 2:
    return np.zeros(2, np.float32)
  t, c = np.arange(n)[keep], centroids[:n][keep]
  tc = t - t.mean()
  return ((tc[:, None] * (c - c.mean(0))).sum(0) / (tc ** 2).sum()).astype(np.float32)


def read_video(video: np.ndarray, rate: int = 1) -> list[Reading]:
  """The objects the oracle finds in a video uint8 [T, H, W, 3], largest first.

  Videos larger than the dataset's SIZE (a cascade's SSR output) are read at their own scale
  H / SIZE, and `rate` is their frame rate relative to the dataset's (2 after a TSR stage); the
  readings' velocities, steps and sizes are in the dataset's pixels and frames either way.
  """
  if video.ndim != 4 or video.shape[-1] != 3:
    raise ValueError(f"video: expected uint8 [T, H, W, 3], got shape {video.shape}")
  if not isinstance(rate, (int, np.integer)) or rate < 1:
    raise ValueError(f"rate={rate!r}; expected an integer >= 1 (frames per dataset frame)")
  value, labels = colour_labels(video)
  num_frames, height, width = value.shape
  scale = height / md.SIZE
  crop = int(round(CROP * scale))
  min_pixels = MIN_FRAME_PIXELS * scale ** 2
  counts = np.bincount(labels[labels >= 0], minlength=len(md.PALETTE))
  total = max(int(counts.sum()), 1)
  colours = [c for c in np.argsort(-counts, kind="stable")
             if counts[c] >= MIN_SHARE * total and counts[c] >= min_pixels][:MAX_OBJECTS]
  svm = classifier()
  yy, xx = np.mgrid[:height, :width]
  readings = []
  for c in colours:
    own = np.where(labels == c, value, 0.0)  # [T, H, W]
    pixels = (labels == c).sum((1, 2))
    present = pixels >= min_pixels
    mass = np.maximum(own.sum((1, 2)), 1e-6)
    centroids = np.stack([(own * yy).sum((1, 2)), (own * xx).sum((1, 2))], -1) / mass[:, None]
    corners = np.round(centroids).astype(int) + crop - crop // 2
    padded = np.pad(own, ((0, 0), (crop, crop), (crop, crop)))
    crops = [crop_features(padded[t, cy:cy + crop, cx:cx + crop])
             for t, (cy, cx) in zip(np.flatnonzero(present), corners[present])]
    frame_digits = np.full(num_frames, -1, np.int32)
    scores = np.zeros(10, np.float32)
    if crops:
      decision = svm.decision_function(np.stack(crops))  # [n, 10]
      frame_digits[present] = svm.classes_[decision.argmax(-1)]
      scores = decision.mean(0).astype(np.float32)
    velocity = _velocity(centroids, present, rate) * rate / scale  # dataset px per dataset frame
    both = present[1:] & present[:-1]
    steps = np.linalg.norm(np.diff(centroids, axis=0), axis=-1)[both] * rate / scale
    readings.append(Reading(
        color=int(c), digit=int(svm.classes_[scores.argmax()]), direction=direction_of(velocity),
        frame_digits=frame_digits, scores=scores, velocity=velocity,
        step=float(steps.mean()) if len(steps) else 0.0, centroids=centroids / scale,
        present=present,
        pixels=float(pixels[present].mean()) / scale ** 2 if present.any() else 0.0))
  return readings


def video_features(video: np.ndarray, readings: list[Reading]) -> np.ndarray:
  """The oracle's feature vector float32 [FEATURE_DIM] of a video [T, H, W, 3], scaled to O(1).

  Mean over the objects found of (classifier scores, digit consistency, velocity, |velocity|,
  step length, presence, size), then the palette histogram of the bright pixels, the bright
  fraction, the number of objects and the mean frame-to-frame change.
  """
  per_object = np.zeros(_OBJECT_DIM, np.float32)
  if readings:
    per_object = np.mean([np.concatenate([
        r.scores / 10.0, [r.consistency], r.velocity / md.SPEED, np.abs(r.velocity) / md.SPEED,
        [r.step / md.SPEED, r.present.mean(), r.pixels / 100.0]]) for r in readings], axis=0)
  value, labels = colour_labels(video)
  bright = max(int((labels >= 0).sum()), 1)
  histogram = np.bincount(labels[labels >= 0], minlength=len(md.PALETTE)) / bright
  change = np.abs(np.diff(value, axis=0)).mean() * 10.0 if len(value) > 1 else 0.0
  return np.concatenate([
      per_object, histogram, [(labels >= 0).mean() * 10.0, len(readings) / 2.0, change]
  ]).astype(np.float32)

