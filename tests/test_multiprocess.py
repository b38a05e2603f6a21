"""Two processes on localhost, joined by jax.distributed.initialize, train a tiny Wan together with
experiments/pod/train.py (mesh data=2 across processes × fsdp=2 within), save an Orbax checkpoint
and restore it onto the mesh; their losses equal a one-process run on four devices."""

import importlib.util
import json
import os
import socket
import subprocess
import sys

import jax
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "experiments", "pod", "train.py")
CONFIG = os.path.join(ROOT, "experiments", "pod", "configs", "local.py")


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _load(path: str, name: str):
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_two_processes_train_and_checkpoint(tmp_path):
  port = _free_port()
  env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
             JAX_PLATFORMS="cpu",
             # Two CPU devices per process; low LLVM effort: compiling is most of this test's time.
             XLA_FLAGS="--xla_force_host_platform_device_count=2 "
                       "--xla_backend_optimization_level=0")
  procs = [subprocess.Popen(
      [sys.executable, SCRIPT, f"--config={CONFIG}", f"--workdir={tmp_path / 'run'}",
       f"--coordinator=localhost:{port}", "--num_processes=2", f"--process_id={i}"],
      env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]

  # Meanwhile, the same training in this process on four of its devices (mesh fsdp=4).
  pod = _load(SCRIPT, "pod_train")
  config = _load(CONFIG, "pod_local").get_config()
  local = pod.train(config, str(tmp_path / "local"), devices=jax.devices()[:4],
                    compiler_options={"xla_backend_optimization_level": 0})

  results = []
  for p in procs:
    try:
      out, _ = p.communicate(timeout=240)
    except subprocess.TimeoutExpired:
      for q in procs:
        q.kill()
      pytest.fail("the two training processes did not finish in 240 s")
    assert p.returncode == 0, out[-3000:]
    line = [l for l in out.splitlines() if l.startswith("RESULT ")]
    assert line, out[-3000:]
    results.append(json.loads(line[-1][len("RESULT "):]))

  assert sorted(r["process"] for r in results) == [0, 1]
  for r in results:
    assert r["mesh"] == {"data": 2, "fsdp": 2, "context": 1, "tensor": 1}
    assert r["step"] == config.steps == len(r["losses"])
    assert r["restored_equal"] is True  # The checkpoint restored onto the mesh equals the state.
    assert r["losses"] == results[0]["losses"]
  assert local["mesh"]["fsdp"] == 4 and local["restored_equal"] is True
  for a, b in zip(results[0]["losses"], local["losses"]):
    assert abs(a - b) <= 1e-5 * abs(b)
  assert os.path.isdir(tmp_path / "run" / "checkpoints" / str(config.steps))
