"""`jaxgen eval --model NAME`: sample held-out prompts, judge the videos with the oracle, print JSON.

NAME is a text-to-video model (the shipped moving-digits, or a bundle directory), a cascade
(moving-digits-cascade: judged after every stage, with each stage's time), or a TSR/SSR stage
bundle (moving-digits-tsr, moving-digits-ssr, or a directory: the stage against naive upsampling
on held-out ground truth, PSNR and oracle).
"""

import argparse
import json
import time

from jaxgen.pipelines.generate_cli import guidance_scales


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--model", default=None, help="a shipped model (default: moving-digits), a bundle "
                      "directory, a cascade (moving-digits-cascade) or a stage (moving-digits-tsr, -ssr, or a "
                      "stage directory)")
  parser.add_argument("--num-videos", type=int, default=256, help="held-out prompts to sample (test split)")
  parser.add_argument("--batch-size", type=int, default=32)
  parser.add_argument("--steps", type=int, default=None, help="sampling steps (default: the model's)")
  parser.add_argument("--frames", type=int, default=None,
                      help="frames per video (default: the model's); 1: images, judged on digit "
                      "and colour")
  parser.add_argument("--sampler", default=None)
  parser.add_argument("--guidance", type=guidance_scales, default=None,
                      help="guidance scale, or one per noise-level expert (default: the model's)")
  parser.add_argument("--aug-level", type=float, default=None,
                      help="a stage's noise-augmentation level of its input (default: the bundle's)")
  parser.add_argument("--seed", type=int, default=0, help="sampling seed")
  parser.add_argument("--data-seed", type=int, default=0, help="seed of the Moving Digits test split")
  parser.add_argument("--output", default=None, help="also write the JSON to this file")


def run(args: argparse.Namespace) -> int:
  for name in ("num_videos", "batch_size", "steps", "frames"):
    value = getattr(args, name)
    if value is not None and value < 1:
      raise ValueError(f"--{name.replace('_', '-')}={value} is not supported; expected an integer >= 1")
  import numpy as np  # pylint: disable=g-import-not-at-top

  from jaxgen.data import moving_digits  # pylint: disable=g-import-not-at-top
  from jaxgen.eval import cascade as cascade_eval  # pylint: disable=g-import-not-at-top
  from jaxgen.eval import metrics  # pylint: disable=g-import-not-at-top
  from jaxgen.pipelines import cascade  # pylint: disable=g-import-not-at-top
  from jaxgen.pipelines.load import load_pipeline  # pylint: disable=g-import-not-at-top

  stage = args.model and cascade.stage_dir(args.model)
  kwargs = dict(num_videos=args.num_videos, batch_size=args.batch_size, seed=args.seed,
                data_seed=args.data_seed)
  if args.frames is not None and (stage or args.model in cascade.cascade_names()):
    raise ValueError(f"--frames={args.frames} is not supported with model={args.model!r}; expected "
                     f"a text-to-video model (a stage or cascade takes its frame count from below)")
  if stage:
    result = cascade_eval.evaluate_stage(stage, steps=args.steps, sampler=args.sampler,
                                         guidance=args.guidance, aug_level=args.aug_level, **kwargs)
    return _report(result, args.output)
  if args.aug_level is not None:
    raise ValueError(f"--aug-level={args.aug_level!r} is not supported with model={args.model!r}; "
                     f"expected a TSR/SSR stage (the level its input is noised to)")
  if args.model in cascade.cascade_names():
    # Each stage samples with its own sampler, steps and guidance, set in its bundle.
    for name in ("steps", "sampler", "guidance"):
      if getattr(args, name) is not None:
        raise ValueError(f"--{name}={getattr(args, name)!r} is not supported with a cascade "
                         f"(model={args.model!r}); each stage uses the settings in its bundle")
    return _report(cascade_eval.evaluate_cascade(args.model, **kwargs), args.output)

  pipe, note = load_pipeline(args.model)
  if note:
    print(f"note: {note}")
  # Held-out prompts: the test split's captions, whose glyphs (handwriting) training never saw;
  # the same videos are the real set of the Fréchet distance.
  examples = [moving_digits.example(args.data_seed, "test", i) for i in range(args.num_videos)]
  start = time.perf_counter()
  videos = []
  for b in range(0, len(examples), args.batch_size):
    prompts = [str(e["caption"]) for e in examples[b:b + args.batch_size]]
    videos.append(pipe(prompts, num_frames=args.frames, num_steps=args.steps, sampler=args.sampler,
                       guidance_scale=args.guidance, seed=args.seed + b))
  seconds = time.perf_counter() - start
  videos = np.concatenate(videos)
  attributes = {k: np.stack([e[k] for e in examples]) for k in ("num_objects", "digit", "color", "direction")}
  real = np.stack([e["video"][:videos.shape[1]] for e in examples])
  result = metrics.evaluate(videos, attributes, real_videos=real)
  cfg = pipe.config
  result.update(model=args.model or "moving-digits", frames=videos.shape[1],
                sampler=args.sampler or cfg.sampler,
                steps=args.steps or cfg.num_steps,
                guidance=cfg.guidance_scale if args.guidance is None else args.guidance,
                seed=args.seed, sampling_seconds=round(seconds, 1))
  return _report(result, args.output)


def _report(result: dict, output: str | None) -> int:
  """Prints the JSON, and writes it atomically to `output` when given."""
  from jaxgen import files  # pylint: disable=g-import-not-at-top

  text = json.dumps(result, indent=2)
  print(text)
  if output:
    files.write_text(output, text + "\n")
  return 0
