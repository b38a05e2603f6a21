"""The `jaxgen` command: generate | train | eval | convert | models | bench | memory.

Each subcommand lives in its own module exposing `add_arguments(parser)` and
`run(args) -> int`; modules import JAX lazily so `jaxgen --help` stays instant.
"""

import argparse
import importlib
import importlib.util
import os
import sys

# name -> (module, one-line help)
_COMMANDS = {
    "generate": ("jaxgen.pipelines.generate_cli", "generate a video or image from a text prompt"),
    "train": ("jaxgen.train.cli", "train a model from an experiment config"),
    "eval": ("jaxgen.eval.cli", "evaluate a model on the built-in dataset's oracle"),
    "convert": ("jaxgen.zoo.convert_cli", "convert a diffusers/transformers checkpoint directory"),
    "models": ("jaxgen.zoo.models_cli", "list the model zoo's presets"),
    "bench": ("jaxgen.bench_cli", "time jaxgen against the PyTorch reference"),
    "memory": ("jaxgen.parallel.memory_cli",
               "per-device memory of a preset on a mesh, compiled ahead of time"),
}


def _available():
  """Subcommands whose module is present in this installation."""
  found = {}
  for name, (module, help_) in _COMMANDS.items():
    if importlib.util.find_spec(module) is not None:
      found[name] = (module, help_)
  return found


def main(argv=None) -> int:
  # jaxgen takes only tokenizers from transformers, which then warns on import that PyTorch is
  # missing: advice for people running transformers' models, noise before every command here.
  os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
  parser = argparse.ArgumentParser(prog="jaxgen", description=__doc__.splitlines()[0])
  sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
  commands = _available()
  modules = {}
  for name, (module_name, help_) in commands.items():
    module = importlib.import_module(module_name)
    modules[name] = module
    module.add_arguments(sub.add_parser(name, help=help_, description=help_))
  args = parser.parse_args(argv)
  try:
    return modules[args.command].run(args) or 0
  except ValueError as e:  # Errors for people: the message names argument, value and expectation.
    print(f"jaxgen {args.command}: error: {e}", file=sys.stderr)
    return 2


def run() -> None:
  """Console-script entry point."""
  sys.exit(main())
