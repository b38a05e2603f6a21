"""Data sources of the tasks: the Moving Digits tfds splits, built on first use."""

import functools

import ml_collections


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
