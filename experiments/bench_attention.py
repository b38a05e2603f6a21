r"""Where the video DiT's time goes on the CPU: its attention, timed in each of the forms jaxgen
has had, against torch's scaled_dot_product_attention in the same rounds.

At the benchmark's Wan case (16x32x32 = 16,384 tokens, 4 heads of 128) self-attention is ~80% of
the forward's FLOPs, so its form decides the ratio to diffusers; --kv-tokens 512 times the
cross-attention to the 512 text tokens instead. Forms:
  xla      jax.nn.dot_product_attention's portable path: [T, S] logits in memory
  fused    head-major einsums that XLA:CPU fuses into one kernel (no logits in memory)
  blocked  a scan over key blocks with an online softmax (flash attention's loop), per key block
           and query chunk size ("blocked KEYSxQUERIES")
  torch    torch.nn.functional.scaled_dot_product_attention (what diffusers calls)

  python experiments/bench_attention.py [--tokens 4096,16384] [--kv-tokens 512]
      [--blocks 1024,2048] [--q-chunks 8192] [--heads 8 --head-dim 64] [--repeats 3]
      [--out FILE.json]

Prints one JSON object (per token count: median seconds, GFLOP/s and the ratio to torch of each
form) and writes it atomically to --out.
"""

import argparse
import functools
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import files
from jaxgen.bench import measure
from jaxgen.nn import einsum_attention as ea

XLA_MAX_TOKENS = 8192  # the portable path holds [N, T, T] f32 logits: 2 GiB at 8k tokens, 8 heads


def forms(tokens: int, kv_tokens: int, blocks: tuple[int, ...], q_chunks: tuple[int, ...]) -> dict:
  """name -> jitted attention q: [1, T, N, H], k, v: [1, S, N, H] -> [1, T, N, H]."""
  out = {}
  if max(tokens, kv_tokens) <= XLA_MAX_TOKENS:
    out["xla"] = jax.jit(lambda q, k, v: jax.nn.dot_product_attention(q, k, v))

  out["fused"] = jax.jit(ea.fused_attention)
  for block in blocks:
    for q_chunk in q_chunks:
      if block <= kv_tokens:
        out[f"blocked {block}x{q_chunk}"] = jax.jit(functools.partial(
            ea.blocked_attention, block=block, q_chunk=q_chunk))
  return out


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--tokens", default="4096,16384")
  parser.add_argument("--kv-tokens", type=int, default=None,
                      help="keys per call (cross-attention); default: as many as --tokens")
  parser.add_argument("--blocks", default="1024,2048,4096")
  parser.add_argument("--q-chunks", default="8192")
  parser.add_argument("--heads", type=int, default=8)
  parser.add_argument("--head-dim", type=int, default=64)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--out", default=None)
  args = parser.parse_args(argv)
  token_counts = [int(t) for t in args.tokens.split(",")]
  blocks = tuple(int(b) for b in args.blocks.split(","))
  q_chunks = tuple(int(c) for c in args.q_chunks.split(","))
  kv = args.kv_tokens
  if min(args.repeats, args.heads, args.head_dim, *token_counts, *blocks, *q_chunks,
         1 if kv is None else kv) < 1:
    raise ValueError(f"--repeats, --heads, --head-dim, --tokens, --kv-tokens, --blocks, "
                     f"--q-chunks: expected positive integers, got {args.repeats}, {args.heads}, "
                     f"{args.head_dim}, {args.tokens}, {args.kv_tokens}, {args.blocks}, "
                     f"{args.q_chunks}")
  heads, head_dim = args.heads, args.head_dim
  import torch  # pylint: disable=g-import-not-at-top
  import torch.nn.functional as F  # pylint: disable=g-import-not-at-top

  result = {"heads": heads, "head_dim": head_dim, "repeats": args.repeats,
            "machine": {"cpu_count": os.cpu_count(), "jax": jax.__version__,
                        "torch": torch.__version__, "load_avg": list(os.getloadavg())},
            "cases": []}
  for tokens in token_counts:
    rng = np.random.default_rng(0)
    kv_tokens = tokens if kv is None else kv
    q, k, v = (rng.standard_normal((1, n, heads, head_dim)).astype(np.float32)
               for n in (tokens, kv_tokens, kv_tokens))
    flops = 4 * heads * tokens * kv_tokens * head_dim  # q·kᵀ and p·v
    calls, reference = {}, None
    for name, fn in forms(tokens, kv_tokens, blocks, q_chunks).items():
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
    result["cases"].append({"tokens": tokens, "kv_tokens": kv_tokens, "forms": {
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
