"""Runs cases one at a time and gathers the JSON result: machine, GEMM peaks, cases, targets."""

from collections.abc import Callable, Sequence
import gc
import os
import platform
import time
from typing import Any

import jax

from jaxgen.bench.case import Case
from jaxgen.bench.measure import gemm_peaks, gemm_probes, median, merge_peaks
from jaxgen.bench.measure import run_interleaved, timed

SCHEMA = "jaxgen.bench/1"
SIDES = {"jaxgen": "jax", "diffusers": "torch"}  # side -> framework of its GEMM peak


def machine_info(torch_device: str | None) -> dict:
  """What the figures were measured on, and how loaded it was."""
  import numpy as np

  info = {"platform": platform.platform(), "python": platform.python_version(),
          "cpu": _cpu_name(), "cpu_count": os.cpu_count(), "jax": jax.__version__,
          "numpy": np.__version__, "backend": jax.default_backend(),
          "device": str(jax.devices()[0].device_kind), "load_avg_start": list(os.getloadavg()),
          "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
  if torch_device is not None:
    import diffusers
    import torch

    info.update(torch=torch.__version__, diffusers=diffusers.__version__,
                torch_threads=torch.get_num_threads(), torch_device=torch_device)
    if torch_device != "cpu":
      info["torch_device_name"] = torch.cuda.get_device_name()
  return info


def _cpu_name() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor()


def summarize(case: Case, times: dict[str, list[float]]) -> dict:
  """A case's JSON entry (MFU is added once the run's GEMM peak is known)."""
  medians = {name: median(t) for name, t in times.items()}
  out = {"name": case.name, "description": case.description, "flops": case.flops,
         "repeats": case.repeats}
  for side in SIDES:
    if side not in case.info:
      out[side] = None
      continue
    info = dict(case.info[side])
    entry = {"median_s": medians.get(side), "min_s": min(times[side]) if side in times else None,
             "times_s": times.get(side), "compile_s": info.pop("compile_s", None),
             "peak_bytes": info.pop("peak_bytes", None), "flops_per_s": None, "mfu": None,
             "mfu_sweep": None}
    if case.flops and entry["median_s"]:
      entry["flops_per_s"] = case.flops / entry["median_s"]
    entry["memory"] = info or None
    out[side] = entry
  both = out["jaxgen"] and out["diffusers"] and medians.get("jaxgen") and medians.get("diffusers")
  out["speedup"] = medians["diffusers"] / medians["jaxgen"] if both else None
  out["rel_err"] = case.rel_err
  out["extra"] = dict(case.extra) | (case.finish(medians) if case.finish else {})
  out["extra_times_s"] = {k: v for k, v in times.items() if k not in SIDES} or None
  return out


def add_mfu(results: list[dict], peaks: dict) -> None:
  """Sets each side's MFU: its FLOP/s over its own framework's GEMM rate measured in the case's
  own rounds (same load), and mfu_sweep: over the run's best sweep peak (`peaks`)."""
  for r in results:
    for side, framework in SIDES.items():
      entry = r[side]
      if not entry or not entry["flops_per_s"]:
        continue
      if framework in (r.get("gemm_in_rounds") or {}):
        entry["mfu"] = entry["flops_per_s"] / r["gemm_in_rounds"][framework]
      if framework in peaks:
        entry["mfu_sweep"] = entry["flops_per_s"] / peaks[framework]["flops_per_s"]


def check_targets(results: list[dict], targets: dict[str, dict[str, float]]) -> list[dict]:
  """[{case, metric, target, value, met}] for targets {case: {metric: bound}}.

  Metrics: speedup and mfu (at least), overhead and compile_s (at most).
  """
  by_name = {r["name"]: r for r in results}
  out = []
  for name, bounds in targets.items():
    r = by_name.get(name)
    if r is None:
      continue
    for metric, bound in bounds.items():
      if metric == "speedup":
        value, met = r["speedup"], r["speedup"] is not None and r["speedup"] >= bound
      elif metric == "mfu":
        value = r["jaxgen"]["mfu"]
        met = value is not None and value >= bound
      elif metric == "overhead":
        value = r["extra"].get("jaxgen_overhead")
        met = value is not None and value <= bound
      elif metric == "compile_s":
        value = r["jaxgen"]["compile_s"]
        met = value is not None and value <= bound
      else:
        raise ValueError(f"target metric={metric!r}; expected speedup, mfu, overhead or compile_s")
      out.append({"case": name, "metric": metric, "target": bound, "value": value, "met": met})
  return out


def run(cases: Sequence[tuple[str, Callable[[], Case]]], *, mode: str,
        peak_shapes: Sequence[tuple[int, int, int]], peak_dtype: str, peak_repeats: int = 5,
        probe_calls: int = 5, torch_device: str | None = "cpu",
        targets: dict | None = None, log: Callable[[str], None] = print) -> dict:
  """Builds and times each (name, factory) in turn, freeing it before the next.

  GEMM peaks: a sweep over peak_shapes at the start and the end of the run, and each framework's
  best shape (probe_calls GEMMs per call) timed in every case's interleaved rounds: the MFU
  denominator, measured under the load the case ran under.
  """
  previous_cache = jax.config.jax_enable_compilation_cache
  jax.config.update("jax_enable_compilation_cache", False)  # compile times must be cold
  try:
    machine = machine_info(torch_device)
    log(f"GEMM peak ({peak_dtype}, {len(peak_shapes)} shapes)...")
    peak_runs = [gemm_peaks(list(peak_shapes), peak_dtype, peak_repeats, torch_device)]
    probes = gemm_probes(peak_runs[0], probe_calls, torch_device)
    results = []
    for name, factory in cases:
      log(f"{name}: building (weights, compile, warm-up, parity, memory)...")
      case, build_s = timed(factory)
      log(f"{name}: built in {build_s:.0f} s; timing {case.repeats} interleaved repeats...")
      calls = dict(case.calls)
      if calls:
        calls |= {f"gemm_{fw}": call for fw, (call, _) in probes.items()}
      times = run_interleaved(calls, case.repeats) if calls else {}
      in_rounds = {fw: flops / median(times.pop(f"gemm_{fw}")) for fw, (_, flops) in probes.items()
                   if f"gemm_{fw}" in times}
      results.append(summarize(case, times) | {"build_s": build_s,
                                                "gemm_in_rounds": in_rounds or None})
      del case
      gc.collect()
    log("GEMM peak again...")
    peak_runs.append(gemm_peaks(list(peak_shapes), peak_dtype, peak_repeats, torch_device))
  finally:
    jax.config.update("jax_enable_compilation_cache", previous_cache)
  peaks = merge_peaks(peak_runs)
  add_mfu(results, peaks)
  machine["load_avg_end"] = list(os.getloadavg())
  return {"schema": SCHEMA, "mode": mode, "machine": machine, "gemm_peak": peaks,
          "cases": results, "targets": check_targets(results, targets or {})}


def validate(result: dict) -> None:
  """Raises ValueError unless `result` has the JSON schema `run` produces."""
  def need(obj, keys, where):
    missing = [k for k in keys if k not in obj]
    if missing:
      raise ValueError(f"{where} lacks {missing}")

  need(result, ("schema", "mode", "machine", "gemm_peak", "cases", "targets"), "result")
  if result["schema"] != SCHEMA:
    raise ValueError(f"schema={result['schema']!r}; expected {SCHEMA!r}")
  need(result["gemm_peak"], ("jax",), "gemm_peak")
  for case in result["cases"]:
    need(case, ("name", "description", "flops", "repeats", "jaxgen", "diffusers", "speedup",
                "rel_err", "extra", "gemm_in_rounds"), f"case {case.get('name')}")
    for side in SIDES:
      if case[side] is not None:
        need(case[side], ("median_s", "times_s", "compile_s", "peak_bytes", "flops_per_s", "mfu"),
             f"case {case['name']} {side}")
  for t in result["targets"]:
    need(t, ("case", "metric", "target", "value", "met"), "target")


def as_jsonable(x: Any) -> Any:
  """Floats/ints/None/str in nested dicts and lists (numpy scalars converted)."""
  if isinstance(x, dict):
    return {str(k): as_jsonable(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [as_jsonable(v) for v in x]
  if hasattr(x, "item"):
    return x.item()
  return x
