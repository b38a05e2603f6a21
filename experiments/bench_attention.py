r"""Where the video DiT's time goes on the CPU: its self-attention, timed in each of the forms
jaxgen has had, against torch's scaled_dot_product_attention in the same rounds.

At the benchmark's Wan case (16x32x32 = 16,384 tokens, 8 heads of 64) attention is ~80% of the
forward's FLOPs, so its form decides the ratio to diffusers. Forms:
  xla      jax.nn.dot_product_attention's portable path: [T, S] logits in memory
  fused    head-major einsums that XLA:CPU fuses into one kernel (no logits in memory)
  blocked  a scan over key blocks with an online softmax (flash attention's loop), per block size
  torch    torch.nn.functional.scaled_dot_product_attention (what diffusers calls)

  python experiments/bench_attention.py [--tokens 4096,16384] [--repeats 3] [--out FILE.json]

Prints one JSON object (per token count: median seconds, GFLOP/s and the ratio to torch of each
form) and writes it atomically to --out.
"""

import argparse
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import files
from jaxgen.bench import measure
from jaxgen.nn import einsum_attention as ea

HEADS, HEAD_DIM = 8, 64
XLA_MAX_TOKENS = 8192  # the portable path holds [8, T, T] f32 logits: 2 GiB at 8k tokens


def forms(tokens: int, blocks: tuple[int, ...]) -> dict:
  """name -> jitted attention q, k, v [1, T, N, H] -> [1, T, N, H]."""
  out = {}
  if tokens <= XLA_MAX_TOKENS:
    out["xla"] = jax.jit(lambda q, k, v: jax.nn.dot_product_attention(q, k, v))

  out["fused"] = jax.jit(ea.fused_attention)
  for block in blocks:
    if block < tokens:
      out[f"blocked {block}"] = jax.jit(
          lambda q, k, v, block=block: ea.blocked_attention(q, k, v, block=block))
  return out


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--tokens", default="4096,16384")
  parser.add_argument("--blocks", default="1024,2048,4096")
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--out", default=None)
  args = parser.parse_args(argv)
  token_counts = [int(t) for t in args.tokens.split(",")]
  blocks = tuple(int(b) for b in args.blocks.split(","))
  if args.repeats < 1 or min(token_counts) < 1 or min(blocks) < 1:
    raise ValueError(f"--repeats, --tokens, --blocks: expected positive integers, got "
                     f"{args.repeats}, {args.tokens}, {args.blocks}")
  import torch  # pylint: disable=g-import-not-at-top
  import torch.nn.functional as F  # pylint: disable=g-import-not-at-top

  result = {"heads": HEADS, "head_dim": HEAD_DIM, "repeats": args.repeats,
            "machine": {"cpu_count": os.cpu_count(), "jax": jax.__version__,
                        "torch": torch.__version__, "load_avg": list(os.getloadavg())},
            "cases": []}
  for tokens in token_counts:
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, tokens, HEADS, HEAD_DIM)).astype(np.float32)
               for _ in range(3))
    flops = 4 * HEADS * tokens * tokens * HEAD_DIM  # q·kᵀ and p·v
    calls, reference = {}, None
    for name, fn in forms(tokens, blocks).items():
      args_j = tuple(jnp.asarray(x) for x in (q, k, v))
      compiled = fn.lower(*args_j).compile()
      out = np.asarray(compiled(*args_j))
      if reference is None:
        tq, tk, tv = (torch.from_numpy(x).transpose(1, 2) for x in (q, k, v))
        with torch.no_grad():
          reference = F.scaled_dot_product_attention(tq, tk, tv).transpose(1, 2).numpy()
      err = float(np.abs(out - reference).max() / np.abs(reference).max())
      if err > 1e-4:
        raise AssertionError(f"{name} at {tokens} tokens: relative error {err:.1e} vs torch")
      calls[name] = measure.jax_call(compiled, *args_j)
    tq, tk, tv = (torch.from_numpy(x).transpose(1, 2).contiguous() for x in (q, k, v))

    def torch_call():
      with torch.no_grad():
        return F.scaled_dot_product_attention(tq, tk, tv)

    calls["torch"] = torch_call
    measure.run_interleaved(calls, 1)  # warm-up round
    times = measure.run_interleaved(calls, args.repeats)
    torch_s = measure.median(times["torch"])
    result["cases"].append({"tokens": tokens, "forms": {
        name: {"median_s": measure.median(t), "gflops": flops / measure.median(t) / 1e9,
               "speedup_vs_torch": torch_s / measure.median(t)} for name, t in times.items()}})
    print(json.dumps(result["cases"][-1]), file=sys.stderr)
  text = json.dumps(result, indent=1)
  print(text)
  if args.out:
    files.write_text(args.out, text + "\n")
  return 0


if __name__ == "__main__":
  sys.exit(main())
