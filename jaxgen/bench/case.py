"""A benchmark case: named calls ready to time, and what was measured while building them."""

from collections.abc import Callable
import dataclasses
from typing import Any

import jax

from jaxgen.bench.measure import jax_call, jax_memory, timed, torch_peak_bytes


@dataclasses.dataclass
class Case:
  """Built, compiled and warmed up; `calls` are timed interleaved by the runner.

  calls holds "jaxgen" and (unless jaxgen-only) "diffusers", both doing `flops` FLOPs per call,
  plus any extra calls a case needs (e.g. one forward of the sampler's model). info holds, per
  call name, compile_s and memory figures; finish maps the calls' median seconds to case-specific
  results (e.g. the sampling loop's overhead).
  """

  name: str
  description: str
  flops: float | None
  calls: dict[str, Callable[[], Any]]
  repeats: int
  info: dict[str, dict] = dataclasses.field(default_factory=dict)
  rel_err: float | None = None  # jaxgen's output against the reference's
  extra: dict = dataclasses.field(default_factory=dict)
  finish: Callable[[dict[str, float]], dict] | None = None


def build_jax(fn: Callable, *args: Any) -> tuple[Callable[[], Any], Any, dict]:
  """jit(fn) compiled for args -> (blocking call, first output, {compile_s, memory})."""
  lowered, lower_s = timed(lambda: jax.jit(fn).lower(*args))
  compiled, compile_s = timed(lowered.compile)
  call = jax_call(compiled, *args)
  out = call()  # warm-up
  return call, out, {"compile_s": lower_s + compile_s, **jax_memory(compiled)}


def build_torch(fn: Callable[[], Any], device: str = "cpu",
                measure_memory: bool = True) -> tuple[Callable[[], Any], Any, dict]:
  """fn run under inference_mode and synchronised -> (call, first output, {peak_bytes})."""
  import torch

  sync = torch.cuda.synchronize if device != "cpu" else (lambda: None)

  def call():
    with torch.inference_mode():
      out = fn()
    sync()
    return out

  out = call()  # warm-up
  info = {"compile_s": None}  # eager: nothing to compile
  if measure_memory:
    info["peak_bytes"] = torch_peak_bytes(call, device)
  return call, out, info
