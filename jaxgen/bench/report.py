"""The benchmark result as Markdown tables (the JSON is the record; this is for people)."""


def _s(x: float | None) -> str:
  if x is None:
    return "—"
  return f"{x * 1e3:.1f} ms" if x < 1 else f"{x:.2f} s"


def _mb(x: int | None) -> str:
  return "—" if x is None else f"{x / 2**20:.0f}"


def _side(entry: dict | None) -> str:
  if not entry or entry["flops_per_s"] is None:
    return "—"
  mfu = "" if entry["mfu"] is None else f" ({entry['mfu'] * 100:.0f}%)"
  return f"{entry['flops_per_s'] / 1e9:.1f}{mfu}"


def table(result: dict) -> str:
  """Markdown: machine line, GEMM peaks, the cases table, extras and targets."""
  m, peaks = result["machine"], result["gemm_peak"]
  lines = [
      f"Machine: {m['cpu']} ({m['cpu_count']} cores), backend {m['backend']} "
      f"({m['device']}); jax {m['jax']}"
      + (f", torch {m['torch']} ({m['torch_threads']} threads), diffusers {m['diffusers']}"
         if "torch" in m else "") + ".",
      f"Load average (1/5/15 min) at start {_load(m['load_avg_start'])}, at end "
      f"{_load(m.get('load_avg_end'))}; started {m['started']}.",
      "GEMM peak sweep (" + ", ".join(
          f"{name}: {p['flops_per_s'] / 1e9:.1f} GFLOP/s at {p['shape']} {p['dtype']}"
          for name, p in peaks.items()) + "): the best shape is timed again in every case's "
      "rounds, and MFU is against that in-round rate (the case's `gemm` column).",
      "",
      "| case | jaxgen | diffusers | speedup | jaxgen GFLOP/s (MFU) | diffusers GFLOP/s (MFU) "
      "| gemm GFLOP/s jax / torch | compile | peak MiB jaxgen / diffusers | rel. err. |",
      "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  ]
  for c in result["cases"]:
    j, d = c["jaxgen"] or {}, c["diffusers"] or {}
    speedup = "—" if c["speedup"] is None else f"{c['speedup']:.2f}×"
    err = "—" if c["rel_err"] is None else f"{c['rel_err']:.1e}"
    compile_s = "—" if j.get("compile_s") is None else f"{j['compile_s']:.1f} s"
    gemm = c.get("gemm_in_rounds") or {}
    gemm = " / ".join("—" if fw not in gemm else f"{gemm[fw] / 1e9:.0f}" for fw in ("jax", "torch"))
    lines.append(
        f"| {c['name']} | {_s(j.get('median_s'))} | {_s(d.get('median_s'))} | {speedup} | "
        f"{_side(c['jaxgen'])} | {_side(c['diffusers'])} | {gemm} | {compile_s} | "
        f"{_mb(j.get('peak_bytes'))} / {_mb(d.get('peak_bytes'))} | {err} |")
  lines += ["", "Cases:"] + [f"- {c['name']}: {c['description']}." for c in result["cases"]]
  lines += _extras(result["cases"])
  if result["targets"]:
    lines += ["", "| target | value | met |", "|---|---:|:---:|"]
    for t in result["targets"]:
      lines.append(f"| {t['case']} {t['metric']} {_bound(t)} | {_value(t)} | "
                   f"{'yes' if t['met'] else 'no'} |")
  return "\n".join(lines) + "\n"


def _load(load: list[float] | None) -> str:
  return "—" if load is None else " / ".join(f"{x:.2f}" for x in load)


def _bound(t: dict) -> str:
  if t["metric"] in ("speedup",):
    return f"≥ {t['target']}×"
  if t["metric"] == "mfu":
    return f"≥ {t['target'] * 100:.0f}%"
  if t["metric"] == "overhead":
    return f"≤ {t['target'] * 100:.0f}%"
  return f"≤ {t['target']} s"


def _value(t: dict) -> str:
  v = t["value"]
  if v is None:
    return "—"
  if t["metric"] == "speedup":
    return f"{v:.2f}×"
  if t["metric"] in ("mfu", "overhead"):
    return f"{v * 100:.1f}%"
  return f"{v:.1f} s"


def _extras(cases: list[dict]) -> list[str]:
  lines = []
  for c in cases:
    e = c["extra"]
    if "jaxgen_overhead" in e:
      lines.append(
          f"- {c['name']}: loop overhead over {e['steps']} × one forward: jaxgen "
          f"{e['jaxgen_overhead'] * 100:+.1f}% (forward {_s(e['jaxgen_forward_median_s'])}), "
          f"diffusers {e['diffusers_overhead'] * 100:+.1f}% "
          f"(forward {_s(e['diffusers_forward_median_s'])}).")
    if "shallow_compile_s" in e:
      lines.append(
          f"- {c['name']}: {e['num_layers']} layers compile in {c['jaxgen']['compile_s']:.1f} s, "
          f"{e['shallow_layers']} layers in {e['shallow_compile_s']:.1f} s "
          f"(ratio {e['depth_ratio']:.2f}: scanning over layers).")
    for m in e.get("memory_vs_frames", []):
      lines.append(
          f"- {c['name']} at {m['frames']} frames: scratch (peak minus the output) jaxgen "
          f"{_mb(m['jaxgen_scratch_bytes'])} MiB, diffusers {_mb(m['diffusers_scratch_bytes'])} "
          f"MiB; output {_mb(m['output_bytes'])} MiB.")
  return ["", "Details:"] + lines if lines else []
