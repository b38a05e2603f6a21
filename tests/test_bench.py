"""The benchmark harness (jaxgen/bench, `jaxgen bench`) at tiny sizes, and the fused CPU attention.

No timed assertions: the JSON schema, FLOP counts against hand counts and torch's counter, both
sides loading the same converted weights and agreeing on outputs, the GPU mode's bf16 path on CPU.
"""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from jaxgen import cli
from jaxgen.bench import cases, flops, reference, report, runner, sampling
from jaxgen.models import dit, wan
from jaxgen.nn import attention
from jaxgen.nn.einsum_attention import blocked_attention, einsum_attention, fused_attention

TINY_DIT = dataclasses.replace(dit.PRESETS["dit-s-2-256"], num_layers=2, num_heads=2, head_dim=32,
                               sample_size=8, num_classes=10)
TINY_WAN = dataclasses.replace(wan.PRESETS["wan2.1-t2v-1.3b"], num_layers=2, num_heads=2,
                               head_dim=32, ffn_dim=128, text_dim=64)


def test_dit_flops_hand_count():
  # Batch 2 of 8x8x4 latents, patch 2: 16 tokens each, 32 in all; width 64, 2 heads of 32.
  patch = 2 * 32 * 16 * 64  # [32, 2·2·4]·[16, 64]
  block = (2 * 32 * 64 * 192  # qkv
           + 2 * (2 * 2 * 2 * 16 * 16 * 32)  # q·kᵀ and probs·v: 2 x 2 heads, 16² pairs
           + 2 * 32 * 64 * 64  # attention output
           + 2 * 32 * 64 * 256 + 2 * 32 * 256 * 64  # MLP
           + 2 * 2 * 64 * 384  # adaLN-Zero
           + 2 * 2 * 256 * 64 + 2 * 2 * 64 * 64)  # the block's timestep MLP
  final = 2 * 2 * 64 * 128 + 2 * 32 * 64 * 32  # final adaLN, output projection
  assert flops.dit_forward(TINY_DIT, 2, 8, 8) == patch + 2 * block + final == 7_143_424


def test_flops_match_torch_counter():
  """The analytic counts against torch's FlopCounterMode on the reference modules."""
  dit_ref = reference.dit_reference(TINY_DIT).eval()
  x, t, y = torch.randn(2, 4, 8, 8), torch.tensor([3, 500]), torch.tensor([1, 2])
  counted = flops.torch_counted(lambda: dit_ref(x, timestep=t, class_labels=y))
  # diffusers recomputes block 0's condition embedding for its final layer; jaxgen reuses it.
  recomputed = 2 * 2 * 256 * 64 + 2 * 2 * 64 * 64
  assert counted == flops.dit_forward(TINY_DIT, 2, 8, 8) + recomputed

  wan_ref = reference.wan_reference(TINY_WAN).eval()
  xw, tw, context = torch.randn(1, 16, 2, 8, 8), torch.tensor([500]), torch.randn(1, 16, 64)
  counted = flops.torch_counted(lambda: wan_ref(xw, timestep=tw, encoder_hidden_states=context))
  assert counted == flops.wan_forward(TINY_WAN, 1, 2, 8, 8, 16)


def test_both_sides_run_the_same_weights():
  pair = reference.load_pair(reference.dit_reference(TINY_DIT), seed=3)
  state = pair.reference.state_dict()
  qkv = np.asarray(pair.params["blocks"]["self_attn"]["qkv"]["kernel"])  # [layers, D, 3, N, H]
  want = state["transformer_blocks.1.attn1.to_k.weight"].numpy().T.reshape(64, 2, 32)
  np.testing.assert_array_equal(qkv[1, :, 1], want)
  # randomize() gave the zero-initialised output projection weights, so outputs depend on it.
  assert np.abs(np.asarray(pair.params["proj_out"]["kernel"])).min() > 0


@pytest.fixture(scope="module")
def dit_case():
  return cases.dit_forward("dit-tiny", TINY_DIT, batch=2, repeats=2)


def test_forward_case_outputs_match(dit_case):
  assert dit_case.rel_err <= 1e-4
  assert set(dit_case.calls) == {"jaxgen", "diffusers"}
  assert dit_case.info["jaxgen"]["compile_s"] > 0
  assert dit_case.info["jaxgen"]["peak_bytes"] >= dit_case.info["jaxgen"]["output"] > 0
  assert dit_case.info["diffusers"]["peak_bytes"] > 0


def test_run_json_schema_and_table(dit_case):
  sampler = sampling.sampling_loop("sample-tiny", TINY_DIT, steps=3, repeats=1)
  assert sampler.rel_err <= 1e-4  # the same 3 guided DDIM steps on both sides
  compile_case = sampling.sampler_compile("compile-tiny", TINY_DIT, steps=3, shallow_layers=1)
  targets = {"dit-tiny": {"speedup": 1.0, "mfu": 0.0}, "sample-tiny": {"overhead": 1e9},
             "compile-tiny": {"compile_s": 1e9}}
  result = runner.run([("dit", lambda: dit_case), ("sample", lambda: sampler),
                       ("compile", lambda: compile_case)], mode="cpu",
                      peak_shapes=[(64, 64, 64), (32, 64, 32)],
                      peak_dtype="float32", peak_repeats=1, probe_calls=2, targets=targets,
                      log=lambda m: None)
  result = json.loads(json.dumps(runner.as_jsonable(result)))
  runner.validate(result)
  peak = result["gemm_peak"]["jax"]
  assert set(peak["by_shape"]) == {"64x64x64", "32x64x32"}
  assert peak["flops_per_s"] == max(peak["by_shape"].values())
  fwd, loop, comp = result["cases"]
  assert fwd["flops"] == flops.dit_forward(TINY_DIT, 2, 8, 8)
  assert len(fwd["jaxgen"]["times_s"]) == len(fwd["diffusers"]["times_s"]) == 2
  # MFU against the GEMM rate measured in the case's own rounds, and against the sweep's best.
  assert fwd["jaxgen"]["mfu"] == pytest.approx(
      fwd["jaxgen"]["flops_per_s"] / fwd["gemm_in_rounds"]["jax"])
  assert fwd["diffusers"]["mfu"] == pytest.approx(
      fwd["diffusers"]["flops_per_s"] / fwd["gemm_in_rounds"]["torch"])
  assert fwd["jaxgen"]["mfu_sweep"] == pytest.approx(
      fwd["jaxgen"]["flops_per_s"] / result["gemm_peak"]["jax"]["flops_per_s"])
  assert fwd["speedup"] == pytest.approx(fwd["diffusers"]["median_s"] / fwd["jaxgen"]["median_s"])
  assert loop["flops"] == 3 * flops.dit_forward(TINY_DIT, 2, 8, 8)
  assert {"jaxgen_overhead", "diffusers_overhead"} <= set(loop["extra"])
  assert comp["diffusers"] is None and comp["jaxgen"]["compile_s"] > 0
  assert comp["gemm_in_rounds"] is None
  assert {(t["case"], t["metric"]) for t in result["targets"]} == {
      ("dit-tiny", "speedup"), ("dit-tiny", "mfu"), ("sample-tiny", "overhead"),
      ("compile-tiny", "compile_s")}
  text = report.table(result)
  assert "| dit-tiny |" in text and "GEMM peak" in text and "loop overhead" in text
  with pytest.raises(ValueError, match="lacks"):
    runner.validate({k: v for k, v in result.items() if k != "cases"})


def test_gpu_mode_runs_small_on_cpu(tmp_path):
  """`--mode gpu` end to end at a tiny size: bf16 on both sides, the JSON written."""
  out = tmp_path / "gpu.json"
  assert cli.main(["bench", "--mode", "gpu", "--small", "--repeats", "1", "--out",
                   str(out)]) == 0
  result = json.loads(out.read_text())
  runner.validate(result)
  (case,) = result["cases"]
  assert case["extra"]["dtype"] == "bfloat16" and result["gemm_peak"]["jax"]["dtype"] == "bfloat16"
  assert case["rel_err"] < 0.05  # bf16 on both sides


@pytest.mark.parametrize("argv,message", [
    (["--cases", "dit-s2,nope"], "--cases='dit-s2,nope'; expected a comma-separated subset"),
    (["--mode", "gpu", "--cases", "dit-s2"], "expected a comma-separated subset of wan-1.3b"),
    (["--vae-frames", "16"], "expected 4k + 1 frames"),
    (["--repeats", "0"], "--repeats=0; expected an integer >= 1"),
])
def test_cli_errors(argv, message, capsys):
  assert cli.main(["bench"] + argv) == 2
  err = capsys.readouterr().err
  assert message in err, err


# The fused CPU attention (jaxgen/nn/einsum_attention.py), the default on CPU.


@pytest.mark.parametrize("dtype,tol", [(jnp.float32, 1e-5), (jnp.bfloat16, 2e-2)])
@pytest.mark.parametrize("q_len,kv_len", [(5, 7), (2048, 600)])  # fused; blocked (long cross-attn)
def test_einsum_attention_matches_jax(dtype, tol, q_len, kv_len):
  rng = np.random.default_rng(0)
  q, k, v = (jnp.asarray(rng.standard_normal(s), dtype)
             for s in ((2, q_len, 3, 16), (2, kv_len, 3, 16), (2, kv_len, 3, 16)))
  mask = jnp.arange(kv_len)[None] < jnp.asarray([[kv_len], [2]])
  for m in (None, mask):
    want = jax.nn.dot_product_attention(q, k, v, mask=None if m is None else m[:, None, None])
    got = einsum_attention(q, k, v, m)
    assert got.dtype == want.dtype
    np.testing.assert_allclose(np.asarray(got, np.float32), np.asarray(want, np.float32),
                               atol=tol, rtol=tol)
  np.testing.assert_allclose(attention.dot_product_attention(q, k, v, mask, "einsum"),
                             attention.dot_product_attention(q, k, v, mask, "xla"), atol=tol)


@pytest.mark.parametrize("tokens,form", [(2048, fused_attention), (8192, einsum_attention)])
def test_einsum_attention_never_holds_the_logits(tokens, form):
  """Neither the one fused kernel nor the blocked loop (taken at 8k tokens) holds the logits."""
  spec = jax.ShapeDtypeStruct((1, tokens, 2, 64), jnp.float32)
  logits_bytes = 4 * 2 * tokens * tokens
  ours = jax.jit(form).lower(spec, spec, spec).compile().memory_analysis()
  theirs = jax.jit(jax.nn.dot_product_attention).lower(spec, spec, spec).compile()
  assert ours.temp_size_in_bytes < logits_bytes / 8 <= theirs.memory_analysis().temp_size_in_bytes


@pytest.mark.parametrize("q_len,kv_len,masked", [(10, 37, False), (10, 37, True), (16, 16, True)])
def test_blocked_attention_matches_jax(q_len, kv_len, masked):
  """The flash-style loop over key blocks (long sequences), lengths not multiples of the block."""
  rng = np.random.default_rng(1)
  q = jnp.asarray(rng.standard_normal((2, q_len, 3, 16)), jnp.float32)
  k, v = (jnp.asarray(rng.standard_normal((2, kv_len, 3, 16)), jnp.float32) for _ in range(2))
  mask = jnp.asarray(rng.random((2, kv_len)) > 0.3) if masked else None
  want = jax.nn.dot_product_attention(q, k, v, mask=None if mask is None else mask[:, None, None])
  np.testing.assert_allclose(blocked_attention(q, k, v, mask, block=8), want, atol=1e-5)
  np.testing.assert_allclose(blocked_attention(q, k, v, mask, block=8, q_chunk=4), want, atol=1e-5)
