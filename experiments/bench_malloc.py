r"""Training speed on the CPU under glibc's malloc and under tcmalloc, in alternating runs of one
config: steps/s after compilation, CPU seconds in user and kernel mode, minor page faults.

Why: XLA:CPU allocates a step's large buffers afresh each step. glibc's malloc serves them with
mmap and returns them with munmap, so every step faults their pages in again, zero-filled by the
kernel; tcmalloc keeps freed pages for the next step. LD_PRELOAD swaps the allocator without
rebuilding anything (experiments/train_moving_digits.sh does it where tcmalloc is installed;
Debian/Ubuntu: `apt install libtcmalloc-minimal4`).

  python experiments/bench_malloc.py [--config experiments/configs/moving_digits_t2i_three.py]
      [--steps 60] [--rounds 1] [--tcmalloc PATH] [--out FILE.json]

The default config needs the dataset and the VAE's latents (experiments/train_moving_digits.sh,
steps 1-2). Prints one JSON object and writes it atomically to --out.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def environment(preload: str | None) -> dict[str, str]:
  """This process's environment with LD_PRELOAD set to `preload` alone (None: unset)."""
  env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
  return env | ({"LD_PRELOAD": preload} if preload else {})


def installed_tcmalloc() -> str | None:
  """The library experiments/use_tcmalloc.sh preloads, or None where there is none."""
  found = subprocess.run(["bash", "-c", '. experiments/use_tcmalloc.sh; printf %s "$LD_PRELOAD"'],
                         env=environment(None), cwd=REPO, check=True, capture_output=True,
                         text=True).stdout
  return found or None


def train_run(config: str, steps: int, preload: str | None) -> dict:
  """One `jaxgen train` of `steps` steps in a fresh workdir: its speed and what it cost the OS."""
  log_every = max(steps // 3, 1)
  before = resource.getrusage(resource.RUSAGE_CHILDREN)
  with tempfile.TemporaryDirectory() as workdir:
    run = subprocess.run(
        [sys.executable, "-m", "jaxgen", "train", "--config", config, "--workdir", workdir,
         f"--config.num_steps={steps}", f"--config.log_every={log_every}",
         f"--config.checkpoint_every={10 * steps}", "--config.num_samples=0"],
        env=environment(preload), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True)
    if run.returncode:
      raise RuntimeError(f"jaxgen train --config {config} (LD_PRELOAD={preload}) exited "
                         f"{run.returncode}:\n{run.stderr[-3000:]}")
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
      rows = [json.loads(line) for line in f]
  after = resource.getrusage(resource.RUSAGE_CHILDREN)
  return {"steps_per_s": rows[-1]["steps_per_s"],  # the last window: compilation is behind it
          "user_s": after.ru_utime - before.ru_utime, "sys_s": after.ru_stime - before.ru_stime,
          "minor_faults": after.ru_minflt - before.ru_minflt}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", default="experiments/configs/moving_digits_t2i_three.py")
  parser.add_argument("--steps", type=int, default=60)
  parser.add_argument("--rounds", type=int, default=1)
  parser.add_argument("--tcmalloc", default=None,
                      help="the library to preload; default: experiments/use_tcmalloc.sh's")
  parser.add_argument("--out", default=None)
  args = parser.parse_args(argv)
  if args.steps < 3 or args.rounds < 1:
    raise ValueError(f"--steps={args.steps}, --rounds={args.rounds}: expected --steps >= 3 (a "
                     f"window after the compiling one) and --rounds >= 1")
  path, sep, arg = args.config.partition(":")  # FILE.py[:ARG], as jaxgen train takes it
  config = os.path.abspath(path) + sep + arg  # the runs start in the repository
  tcmalloc = args.tcmalloc or installed_tcmalloc()
  if tcmalloc is None or not os.path.exists(tcmalloc):
    raise FileNotFoundError(f"--tcmalloc={tcmalloc!r}: no such library; install it "
                            f"(Debian/Ubuntu: apt install libtcmalloc-minimal4) or name its path")
  runs = {"glibc": [], "tcmalloc": []}
  for _ in range(args.rounds):
    for name, preload in (("glibc", None), ("tcmalloc", tcmalloc)):
      runs[name].append(train_run(config, args.steps, preload))
      print(name, json.dumps(runs[name][-1]), file=sys.stderr)
  mean = {name: sum(r["steps_per_s"] for r in rs) / len(rs) for name, rs in runs.items()}
  result = {"config": args.config, "steps": args.steps, "tcmalloc": tcmalloc,
            "cpu_count": os.cpu_count(), "runs": runs,
            "speedup": mean["tcmalloc"] / mean["glibc"]}
  text = json.dumps(result, indent=1)
  print(text)
  if args.out:
    sys.path.insert(0, REPO)
    from jaxgen import files  # pylint: disable=g-import-not-at-top
    files.write_text(args.out, text + "\n")
  return 0


if __name__ == "__main__":
  sys.exit(main())
