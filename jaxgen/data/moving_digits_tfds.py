"""tensorflow-datasets builder for Moving Digits, stored as array_record (TensorFlow not needed).

    builder = moving_digits_tfds.builder(data_dir, train_size=20_000, test_size=1_000)
    builder.download_and_prepare()  # a few minutes on 2 cores, about 0.1 GB on disk
    train = builder.as_data_source("train")  # random access: train[i] -> dict of numpy arrays
"""

import os

import numpy as np
import tensorflow_datasets as tfds

from jaxgen.data import moving_digits as md

FILE_FORMAT = "array_record"
_DESCRIPTION = (
    f"{md.NUM_FRAMES}-frame {md.SIZE}x{md.SIZE} RGB videos of one or two coloured handwritten "
    "digits (scikit-learn's bundled load_digits glyphs) bouncing on black, each with a caption "
    "from a paraphrase grammar and its attributes. Test videos use held-out glyphs.")


class MovingDigitsConfig(tfds.core.BuilderConfig):
  """Split sizes and the generator seed; the name must be unique per setting."""

  def __init__(self, *, train_size: int = 20_000, test_size: int = 1_000, seed: int = 0,
               **kwargs):
    for name, value in (("train_size", train_size), ("test_size", test_size), ("seed", seed)):
      if not isinstance(value, int) or value < (0 if name == "seed" else 1):
        raise ValueError(f"{name}: expected a {'non-negative' if name == 'seed' else 'positive'}"
                         f" int, got {value!r}")
    super().__init__(**kwargs)
    self.train_size, self.test_size, self.seed = train_size, test_size, seed


def features() -> tfds.features.FeaturesDict:
  """Plain tensors: video, caption and per-object attributes padded with -1."""
  objects = (md.MAX_OBJECTS,)
  return tfds.features.FeaturesDict({
      # zlib: the frames are mostly black, so this stores ~10x less.
      "video": tfds.features.Tensor(shape=(md.NUM_FRAMES, md.SIZE, md.SIZE, 3), dtype=np.uint8,
                                    encoding=tfds.features.Encoding.ZLIB),
      "caption": tfds.features.Text(),
      "num_objects": tfds.features.Scalar(dtype=np.int32),
      "digit": tfds.features.Tensor(shape=objects, dtype=np.int32),
      "color": tfds.features.Tensor(shape=objects, dtype=np.int32),
      "direction": tfds.features.Tensor(shape=objects, dtype=np.int32),
      "glyph": tfds.features.Tensor(shape=objects, dtype=np.int32),
  })


class MovingDigits(tfds.core.GeneratorBasedBuilder):
  """Moving Digits: captioned videos of coloured digits bouncing around a black frame."""

  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {"1.0.0": "First release.",
                   "1.1.0": "Half of the captions name where each digit starts (same videos)."}
  BUILDER_CONFIGS = [
      MovingDigitsConfig(name="default", description="20k train / 1k test videos"),
      MovingDigitsConfig(name="tiny", train_size=256, test_size=64,
                         description="256 train / 64 test videos, for quick runs"),
  ]

  def __init__(self, **kwargs):
    kwargs.setdefault("file_format", FILE_FORMAT)
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    # Stored in key order, so record i of a split is `moving_digits.example(seed, split, i)`;
    # training shuffles through the loader's per-epoch permutation instead.
    return self.dataset_info_from_configs(
        description=_DESCRIPTION, features=features(), supervised_keys=None,
        disable_shuffling=True)

  def _split_generators(self, dl_manager):
    del dl_manager  # everything is generated locally
    config = self.builder_config
    return {"train": self._generate_examples("train", config.train_size),
            "test": self._generate_examples("test", config.test_size)}

  def _generate_examples(self, split: str, size: int):
    seed = self.builder_config.seed
    for index in range(size):
      yield index, md.example(seed, split, index)


def builder(data_dir: str | os.PathLike, *, train_size: int = 20_000, test_size: int = 1_000,
            seed: int = 0) -> MovingDigits:
  """The builder for a setting, reusing the named configs; other settings get their own name."""
  for config in MovingDigits.BUILDER_CONFIGS:
    if (config.train_size, config.test_size, config.seed) == (train_size, test_size, seed):
      return MovingDigits(data_dir=os.fspath(data_dir), config=config.name)
  config = MovingDigitsConfig(name=f"train{train_size}_test{test_size}_seed{seed}",
                              train_size=train_size, test_size=test_size, seed=seed)
  return MovingDigits(data_dir=os.fspath(data_dir), config=config)
