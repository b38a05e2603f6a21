"""Timing, GEMM peaks and peak memory, for both frameworks.

Timings on a shared machine are noisy: calls of the compared implementations are interleaved
(rotating which goes first) so load changes hit both alike, and medians are reported.
"""

from collections.abc import Callable
import statistics
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def run_interleaved(calls: dict[str, Callable[[], Any]], repeats: int) -> dict[str, list[float]]:
  """Seconds of `repeats` calls of each; round r runs them in rotated order r mod len(calls)."""
  names = list(calls)
  times = {name: [] for name in names}
  for r in range(repeats):
    shift = r % len(names)
    for name in names[shift:] + names[:shift]:
      start = time.perf_counter()
      calls[name]()
      times[name].append(time.perf_counter() - start)
  return times


def median(times: list[float]) -> float:
  return float(statistics.median(times))


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
  """(fn(), seconds it took)."""
  start = time.perf_counter()
  out = fn()
  return out, time.perf_counter() - start


def jax_call(compiled: Callable, *args: Any) -> Callable[[], Any]:
  """A no-argument call of a compiled JAX function that blocks until its result is ready."""
  return lambda: jax.block_until_ready(compiled(*args))


def jax_memory(compiled: Any) -> dict[str, int]:
  """XLA's static memory plan of a compiled program, in bytes.

  peak_bytes = scratch + outputs: what a call needs beyond its arguments (weights and inputs),
  the same quantity torch_peak_bytes measures.
  """
  m = compiled.memory_analysis()
  out = {k: int(getattr(m, f"{k}_size_in_bytes")) for k in ("temp", "output", "argument", "alias")}
  out["peak_bytes"] = out["temp"] + out["output"] - out["alias"]
  return out


def torch_peak_bytes(call: Callable[[], Any], device: str = "cpu") -> int:
  """Largest increase of torch's allocated bytes during call() (outputs included)."""
  import torch

  if device != "cpu":
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    call()
    torch.cuda.synchronize()
    return int(torch.cuda.max_memory_allocated() - before)
  from torch.profiler import profile, ProfilerActivity

  with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
    call()
  # "[memory]" events are the allocator's allocations (+) and frees (-), in time order.
  events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
  live = peak = 0
  for e in sorted(events, key=lambda e: e.start_ns()):
    live += e.nbytes()
    peak = max(peak, live)
  return int(peak)


def gemm_peaks(shapes: list[tuple[int, int, int]], dtype: str, repeats: int,
               torch_device: str | None = "cpu") -> dict:
  """Each framework's GEMM peak: the best median FLOP/s of [m, k]·[k, n] over `shapes`.

  Jitted JAX and (if torch_device) torch, interleaved shape by shape. The MFU denominator: what
  each framework's own GEMM reaches on this machine in this run. A sweep, because no one shape is
  fastest (on 2 CPU cores a 4096² GEMM spills the cache and runs ~30% below a 2048x1024x2048 one).
  """
  by_shape = {"jax": {}, "torch": {}} if torch_device is not None else {"jax": {}}
  for i, (m, k, n) in enumerate(shapes):
    a = jax.random.normal(jax.random.key(2 * i), (m, k), jnp.dtype(dtype))
    b = jax.random.normal(jax.random.key(2 * i + 1), (k, n), jnp.dtype(dtype))
    compiled = jax.jit(jnp.matmul).lower(a, b).compile()
    calls = {"jax": jax_call(compiled, a, b)}
    if torch_device is not None:
      calls["torch"] = _torch_matmul(a, b, dtype, torch_device)
    for call in calls.values():  # warm-up
      call()
    times = run_interleaved(calls, repeats)
    for name, t in times.items():
      by_shape[name][f"{m}x{k}x{n}"] = 2.0 * m * k * n / median(t)
  out = {}
  for name, rates in by_shape.items():
    best = max(rates, key=rates.get)
    out[name] = {"flops_per_s": rates[best], "shape": best, "dtype": dtype, "by_shape": rates}
  return out


def _torch_matmul(a: jax.Array, b: jax.Array, dtype: str, device: str) -> Callable[[], Any]:
  import torch

  ta, tb = (torch.from_numpy(np.array(x, np.float32)).to(device, getattr(torch, dtype))
            for x in (a, b))
  sync = torch.cuda.synchronize if device != "cpu" else (lambda: None)

  def call():
    out = ta @ tb
    sync()
    return out

  return call


def merge_peaks(runs: list[dict]) -> dict:
  """The best peak per framework over several gemm_peaks runs (start and end of a run)."""
  out = {}
  for run in runs:
    for name, r in run.items():
      if name not in out or r["flops_per_s"] > out[name]["flops_per_s"]:
        out[name] = dict(r)
  for name in out:
    out[name]["all_flops_per_s"] = [run[name]["flops_per_s"] for run in runs if name in run]
  return out


def gemm_probes(peaks: dict, repeats_per_call: int, torch_device: str | None) -> dict:
  """{framework: (call, FLOPs per call)}: each framework's best GEMM shape in `peaks`, run
  repeats_per_call times per call, to time in the same interleaved rounds as a case, so MFU
  compares rates measured under the same load."""
  probes = {}
  for name, peak in peaks.items():
    m, k, n = (int(v) for v in peak["shape"].split("x"))
    a = jax.random.normal(jax.random.key(0), (m, k), jnp.dtype(peak["dtype"]))
    b = jax.random.normal(jax.random.key(1), (k, n), jnp.dtype(peak["dtype"]))
    if name == "jax":
      one = jax_call(jax.jit(jnp.matmul).lower(a, b).compile(), a, b)
    else:
      one = _torch_matmul(a, b, peak["dtype"], torch_device)

    def call(one=one):
      for _ in range(repeats_per_call):
        one()

    call()  # warm-up
    probes[name] = (call, 2.0 * m * k * n * repeats_per_call)
  return probes
