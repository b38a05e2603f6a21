"""Text -> token ids through transformers' tokenizers, loaded from a local directory only."""

from collections.abc import Sequence
import dataclasses
import os
from typing import Any

import numpy as np

_LAYOUT = ("tokenizer.json (fast tokenizers), or vocab.json + merges.txt (CLIP), or spiece.model "
           "(T5/umT5), with tokenizer_config.json")

# transformers' "no limit" sentinel for model_max_length is int(1e30).
_NO_LIMIT = 10**9


@dataclasses.dataclass(frozen=True)
class Tokenizer:
  """A transformers tokenizer that pads/truncates every text to `max_length` tokens."""
  tokenizer: Any  # transformers.PreTrainedTokenizerBase
  max_length: int

  def __call__(self, texts: str | Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """B texts -> ids [B, max_length] int32, attention mask [B, max_length] bool (True = token)."""
    if isinstance(texts, str):
      texts = [texts]
    if not all(isinstance(t, str) for t in texts):
      raise ValueError(f"texts={texts!r}; expected a string or a sequence of strings")
    enc = self.tokenizer(list(texts), padding="max_length", truncation=True,
                         max_length=self.max_length, return_tensors="np")
    return enc["input_ids"].astype(np.int32), enc["attention_mask"].astype(bool)

  @property
  def vocab_size(self) -> int:
    return len(self.tokenizer)


def load_tokenizer(path: str | os.PathLike, max_length: int | None = None) -> Tokenizer:
  """Loads the tokenizer saved in directory `path` (e.g. a diffusers repo's tokenizer/).

  `max_length` defaults to the tokenizer's `model_max_length` (CLIP: 77; pipelines choose
  their own for T5, e.g. 120 for PixArt-alpha and 512 for Wan 2.1).
  """
  path = os.fspath(path)
  if not os.path.isdir(path):
    raise ValueError(f"tokenizer path={path!r} is not a directory; expected a local directory "
                     f"holding {_LAYOUT}")
  import transformers  # Heavy: imported on use.

  try:
    tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
  except (OSError, ValueError, TypeError) as e:
    raise ValueError(f"cannot load a tokenizer from path={path!r} ({e}); expected {_LAYOUT}") from e
  if max_length is None:
    max_length = tokenizer.model_max_length
    if max_length is None or max_length >= _NO_LIMIT:
      raise ValueError(f"the tokenizer in {path!r} sets no model_max_length; pass max_length")
  if max_length < 1:
    raise ValueError(f"max_length={max_length}; expected a positive number of tokens")
  if tokenizer.pad_token is None:
    raise ValueError(f"the tokenizer in {path!r} has no pad token; fixed-length batches need one")
  return Tokenizer(tokenizer, int(max_length))
