r"""Which noise-level expert decides an attribute? Builds a text-to-video bundle whose experts come
from different bundles that share one text encoder, each denoising an interval of levels, to be
judged with `jaxgen eval`.

The base bundle gives the text encoder, the VAE and the sampling defaults; --boundaries sets the
levels where one expert hands over to the next (one or two, descending), and --experts names, from
the highest levels down, each expert as BUNDLE:NAME. E.g. a fresh run's high-noise expert over the
shipped model's low-noise one (the run's text encoder being the shipped one, frozen):

  PYTHONPATH=. python experiments/swap_experts.py --base moving-digits --boundaries 0.8 \
    --experts RUN_BUNDLE:transformer moving-digits:transformer_2 --out /tmp/hybrid
  jaxgen eval --model /tmp/hybrid --frames 1
"""

import argparse
import dataclasses

import jax
import numpy as np

from jaxgen.pipelines import bundle
from jaxgen.pipelines.load import bundle_dir


def hybrid(base: str, boundaries: list[float], experts: list[str]):
  """(config, params, tokenizer directory) of the hybrid bundle."""
  if len(experts) != len(boundaries) + 1 or not 1 <= len(boundaries) <= 2:
    raise ValueError(f"--boundaries {boundaries} with --experts {experts}; expected one or two "
                     f"boundaries and one expert more than boundaries")
  config, params, tokenizer = bundle.load_bundle(bundle_dir(base))
  out = {"text_encoder": params["text_encoder"], "vae": params["vae"]}
  dits = {}
  for slot, spec in zip(bundle.TRANSFORMER_NAMES, experts):
    source, _, name = spec.rpartition(":")
    if not source:
      raise ValueError(f"--experts {spec!r}; expected BUNDLE:NAME")
    other, other_params, _ = bundle.load_bundle(bundle_dir(source))
    if name not in other.transformer_names:
      raise ValueError(f"--experts {spec!r}: {source} has experts {other.transformer_names}")
    same = jax.tree.map(np.array_equal, other_params["text_encoder"], params["text_encoder"])
    if not all(jax.tree.leaves(same)):
      raise ValueError(f"--experts {spec!r}: {source}'s text encoder is not {base}'s; an expert "
                       f"reads the text encoder it was trained with")
    dits[slot], out[slot] = getattr(other, name), other_params[name]
  config = dataclasses.replace(
      config, transformer=dits["transformer"], transformer_2=dits.get("transformer_2"),
      transformer_3=dits.get("transformer_3"), boundary_ratio=boundaries[0],
      boundary_ratio_2=boundaries[1] if len(boundaries) == 2 else None)
  return config, out, tokenizer


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--base", required=True, help="bundle directory or shipped name")
  parser.add_argument("--boundaries", required=True,
                      type=lambda s: [float(v) for v in s.split(",")], help="e.g. 0.8 or 0.8,0.4")
  parser.add_argument("--experts", required=True, nargs="+",
                      help="BUNDLE:NAME each, highest levels first")
  parser.add_argument("--out", required=True)
  args = parser.parse_args()
  print("wrote", bundle.save_bundle(args.out, *hybrid(args.base, args.boundaries, args.experts)))


if __name__ == "__main__":
  main()
