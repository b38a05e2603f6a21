"""The caption grammar of Moving Digits: paraphrases of (digit, colour, direction) per object."""

from collections.abc import Sequence
import re
import unicodedata

import numpy as np

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

# One phrase list per direction, in the order of `moving_digits.DIRECTIONS`.
DIRECTION_PHRASES = {
    "up": ("up", "upward", "upwards", "toward the top"),
    "down": ("down", "downward", "downwards", "toward the bottom"),
    "left": ("left", "to the left", "leftward", "toward the left"),
    "right": ("right", "to the right", "rightward", "toward the right"),
    "up_left": ("up and to the left", "up and left", "diagonally up and left",
                "toward the top left"),
    "up_right": ("up and to the right", "up and right", "diagonally up and right",
                 "toward the top right"),
    "down_left": ("down and to the left", "down and left", "diagonally down and left",
                  "toward the bottom left"),
    "down_right": ("down and to the right", "down and right", "diagonally down and right",
                   "toward the bottom right"),
}

# Where a digit starts, in thirds of the frame (moving_digits.location), and how a caption says it.
# Captions name it with probability LOCATION_PROBABILITY. With the region and the direction named,
# the caption decides most of the video: at the highest noise the latents' mean given colour,
# direction and region explains half their variance (experiments/caption_sensitivity.py), given
# the colour alone 9%. Prompts without a region still work: the model places the digit itself.
LOCATIONS = ("top left", "top", "top right", "left", "centre", "right", "bottom left", "bottom",
             "bottom right")
LOCATION_PHRASES = ("from the {l}", "starting at the {l}")
LOCATION_PROBABILITY = 0.5

# (participle, third person singular) pairs.
VERBS = (("moving", "moves"), ("drifting", "drifts"), ("sliding", "slides"),
         ("floating", "floats"), ("gliding", "glides"), ("heading", "heads"))

# Noun phrases with a participle ("a red 3 moving left"): they join with "and".
# {a}: article agreeing with the next word, {c}: colour, {x}: digit (numeral or word),
# {v}: participle, {d}: direction phrase.
PARTICIPLE_TEMPLATES = (
    "{a} {c} {x} {v} {d}",
    "{a} {c} digit {x} {v} {d}",
    "{a} {c} number {x} {v} {d}",
    "the digit {x} in {c} {v} {d}",
    "{a} {x} in {c} {v} {d}",
)
# Finite clauses ("the digit seven drifts up, in blue"); {v} is the finite verb here.
FINITE_TEMPLATES = (
    "{a} {c} {x} {v} {d}",
    "the {c} {x} {v} {d}",
    "the digit {x} {v} {d}, in {c}",
    "the {c} digit {x} {v} {d}",
    "there is {a} {c} {x} {v2} {d}",
)
# How two object phrases combine; P = participle phrases, F = finite clauses.
PAIR_TEMPLATES = (
    ("P", "{0} and {1}"),
    ("P", "two digits: {0} and {1}"),
    ("P", "{0}, and {1}"),
    ("F", "{0}, and {1}"),
    ("F", "{0} while {1}"),
    ("F", "{0}; {1}"),
)

# Characters the tokenizer turns into spaces (Oniguruma and Python `re` read it alike).
PUNCTUATION = r"[^\w\s]|_"

_VOWEL_SOUND = ("orange", "eight", "8")


def _article(next_word: str) -> str:
  """'a' or 'an' for the word that follows."""
  return "an" if next_word in _VOWEL_SOUND else "a"


def object_phrase(digit: int, color: str, direction: str, *, finite: bool, template: int,
                  verb: int, phrase: int, numeral: bool, location: str | None = None,
                  location_phrase: int = 0) -> str:
  """One object's phrase with every grammar choice given explicitly; location (one of LOCATIONS)
  follows the direction when given."""
  x = str(digit) if numeral else DIGIT_WORDS[digit]
  templates = FINITE_TEMPLATES if finite else PARTICIPLE_TEMPLATES
  text = templates[template]
  if location is not None:
    text = text.replace("{d}", "{d} " + LOCATION_PHRASES[location_phrase].replace("{l}", location))
  # The article agrees with whatever word follows it in this template.
  following = text.split("{a} ", 1)[1].split(" ", 1)[0] if "{a}" in text else ""
  a = _article({"{c}": color, "{x}": x}.get(following, following))
  return text.format(a=a, c=color, x=x, d=DIRECTION_PHRASES[direction][phrase],
                     v=VERBS[verb][1 if finite else 0], v2=VERBS[verb][0])


def caption(objects: Sequence[tuple[int, str, str, str]], rng: np.random.Generator) -> str:
  """Random paraphrase for objects given as (digit, colour name, direction name, location)."""
  if len(objects) == 1:
    finite, pair = bool(rng.integers(2)), None
  elif len(objects) == 2:
    pair = PAIR_TEMPLATES[rng.integers(len(PAIR_TEMPLATES))]
    finite = pair[0] == "F"
  else:
    raise ValueError(f"objects: expected 1 or 2 objects, got {len(objects)}")
  templates = FINITE_TEMPLATES if finite else PARTICIPLE_TEMPLATES
  phrases = []
  for digit, color, direction, location in objects:
    phrases.append(object_phrase(
        digit, color, direction, finite=finite,
        template=int(rng.integers(len(templates))), verb=int(rng.integers(len(VERBS))),
        phrase=int(rng.integers(len(DIRECTION_PHRASES[direction]))),
        numeral=bool(rng.integers(2)),
        location=location if rng.random() < LOCATION_PROBABILITY else None,
        location_phrase=int(rng.integers(len(LOCATION_PHRASES)))))
  return phrases[0] if pair is None else pair[1].format(*phrases)


def vocabulary(colors: Sequence[str]) -> list[str]:
  """Every word the grammar can produce (lowercase, punctuation dropped), sorted."""
  texts = [*DIGIT_WORDS, *map(str, range(10)), *colors, "a", "an"]
  texts += [p for ps in DIRECTION_PHRASES.values() for p in ps]
  texts += [v for vs in VERBS for v in vs]
  texts += [*LOCATIONS, *LOCATION_PHRASES]
  texts += [*PARTICIPLE_TEMPLATES, *FINITE_TEMPLATES, *(t for _, t in PAIR_TEMPLATES)]
  return sorted({w for t in texts for w in normalize(re.sub(r"\{\w*\}", " ", t)).split()})


def normalize(text: str) -> str:
  """The tokenizer's view of a text: lowercase, punctuation as spaces, single spaces."""
  return " ".join(re.sub(PUNCTUATION, " ", unicodedata.normalize("NFKC", text).lower()).split())
