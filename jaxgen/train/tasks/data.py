"""Data sources of the tasks: the Moving Digits tfds splits, built on first use, and renderings
of the same examples at a larger size or frame rate for the cascade's stages."""

import functools

import ml_collections
import numpy as np

from jaxgen.data import moving_digits as md


@functools.cache
def _builder(data_dir: str, train_size: int, test_size: int, seed: int):
  from jaxgen.data import moving_digits_tfds
  builder = moving_digits_tfds.builder(data_dir, train_size=train_size, test_size=test_size,
                                       seed=seed)
  builder.download_and_prepare()  # a no-op once built
  return builder


def moving_digits(data: ml_collections.ConfigDict, split: str):
  """Random-access source of a Moving Digits split: source[i] -> dict of numpy arrays."""
  builder = _builder(data.data_dir, data.train_size, data.test_size, data.seed)
  return builder.as_data_source(split)


class Rendered:
  """Random-access Moving Digits split rendered on the fly at `scale`× the size and `rate`× the
  frame rate (md.example), each example cut to a clip of `clip_frames` frames.

  The super-resolution stages need ground truth above the dataset's 17×32×32, which would take
  gigabytes stored; rendering one example takes about a millisecond. The clip starts at a frame
  that is a multiple of `rate`, so the clip's every rate-th frame is a dataset frame, and where it
  starts is a pure function of (seed, split, index), as the example is.
  """

  def __init__(self, seed: int, split: str, size: int, *, scale: int = 1, rate: int = 1,
               clip_frames: int | None = None):
    frames = md.NUM_FRAMES * rate
    clip_frames = clip_frames or frames
    if not 1 <= clip_frames <= frames:
      raise ValueError(f"clip_frames={clip_frames!r}; expected an integer in [1, {frames}] (the "
                       f"frames of a video at rate {rate})")
    md.example(seed, split, 0, scale=scale, rate=rate)  # checks split, scale and rate up front
    self.seed, self.split, self.size = seed, split, size
    self.scale, self.rate, self.clip_frames = scale, rate, clip_frames
    self.starts = np.arange(0, frames - clip_frames + 1, rate)

  def __len__(self) -> int:
    return self.size

  def __getitem__(self, index: int) -> dict:
    if not 0 <= index < self.size:
      raise IndexError(f"index {index} is out of range for a source of {self.size} examples")
    example = md.example(self.seed, self.split, index, scale=self.scale, rate=self.rate)
    rng = np.random.default_rng([self.seed, md.SPLITS.index(self.split), index, 1])
    start = int(rng.choice(self.starts))
    example["video"] = example["video"][start:start + self.clip_frames]
    return example


def rendered(data: ml_collections.ConfigDict, split: str) -> Rendered:
  """`Rendered` source of `split` from a config's data fields (scale, rate, clip_frames)."""
  size = data.train_size if split == "train" else data.test_size
  return Rendered(data.seed, split, size, scale=data.scale, rate=data.rate,
                  clip_frames=data.clip_frames)
