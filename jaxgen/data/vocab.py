"""Word-level tokenizer for Moving Digits captions, in transformers format.

Built with the `tokenizers` library (WordLevel model; NFKC, lowercase and punctuation-to-space
normalisation; whitespace split; `<s> ... </s>` around every text) and wrapped in
`PreTrainedTokenizerFast`, so `save_pretrained(dir)` and `AutoTokenizer.from_pretrained(dir)` work
offline like any other tokenizer.
"""

import os

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from jaxgen.data import captions, moving_digits

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
SPECIAL_TOKENS = (PAD, UNK, BOS, EOS)  # ids 0..3
MAX_LENGTH = 40  # longest caption: 35 words + <s> + </s>


def build_tokenizer(words: list[str] | None = None) -> PreTrainedTokenizerFast:
  """Tokenizer over `words` (default: the full caption vocabulary) plus the special tokens."""
  words = moving_digits.vocabulary() if words is None else words
  vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
  for word in words:
    if word != captions.normalize(word) or " " in word or not word:
      raise ValueError(f"words: expected normalised single words, got {word!r}")
    vocab.setdefault(word, len(vocab))
  tokenizer = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
  tokenizer.normalizer = normalizers.Sequence([
      normalizers.NFKC(), normalizers.Lowercase(),
      normalizers.Replace(Regex(captions.PUNCTUATION), " ")])
  tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
  tokenizer.post_processor = processors.TemplateProcessing(
      single=f"{BOS} $A {EOS}", pair=f"{BOS} $A {EOS} $B {EOS}",
      special_tokens=[(BOS, vocab[BOS]), (EOS, vocab[EOS])])
  tokenizer.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with spaces
  return PreTrainedTokenizerFast(
      tokenizer_object=tokenizer, pad_token=PAD, unk_token=UNK, bos_token=BOS, eos_token=EOS,
      model_max_length=MAX_LENGTH, padding_side="right", truncation_side="right")


def save_tokenizer(directory: str | os.PathLike) -> PreTrainedTokenizerFast:
  """Builds the caption tokenizer and writes it with `save_pretrained` into `directory`."""
  tokenizer = build_tokenizer()
  tokenizer.save_pretrained(os.fspath(directory))
  return tokenizer
