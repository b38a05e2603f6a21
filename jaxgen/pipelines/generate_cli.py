"""`jaxgen generate PROMPT -o OUT.{gif,mp4,png}`: text to video with a named or local model."""

import argparse
import os
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("prompt", help='what to show, e.g. "a red 7 moving right"')
  parser.add_argument("-o", "--output", required=True,
                      help="output file; .gif, .mp4, or .png (numbered frames OUT_000.png, ...)")
  parser.add_argument("--model", default=None,
                      help="a shipped model name (default: moving-digits), random-tiny, a cascade "
                      "(moving-digits-cascade, random-tiny-cascade), or a bundle directory")
  parser.add_argument("--steps", type=int, default=None, help="sampling steps (default: the model's)")
  parser.add_argument("--sampler", default=None,
                      help="ddpm, ddim, euler, heun, dpmpp_2m, unipc or flow_euler (default: the model's)")
  parser.add_argument("--guidance", type=guidance_scales, default=None,
                      help="classifier-free guidance scale, or one per noise-level expert from the "
                      "highest levels down (e.g. 5,3); 1 disables guidance (default: the model's)")
  parser.add_argument("--negative-prompt", default="", help="what the guidance steers away from")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--frames", type=int, default=None, help="number of frames (default: the model's)")
  parser.add_argument("--num-videos", type=int, default=1,
                      help="videos to sample; several are written as OUT_0.gif, OUT_1.gif, ...")
  parser.add_argument("--fps", type=float, default=8.0)
  parser.add_argument("--upscale", type=int, default=4,
                      help="nearest-neighbour upscaling of the frames for viewing (1 keeps the model's size)")


def guidance_scales(text: str) -> float | tuple[float, ...]:
  """--guidance 4 -> 4.0; --guidance 5,3 -> (5.0, 3.0), one scale per noise-level expert."""
  try:
    scales = tuple(float(s) for s in text.split(","))
  except ValueError:
    raise argparse.ArgumentTypeError(f"{text!r}; expected a number or comma-separated numbers "
                                     "(one per expert), e.g. 4 or 5,3") from None
  return scales[0] if len(scales) == 1 else scales


def run(args: argparse.Namespace) -> int:
  from jaxgen.pipelines import video_io  # pylint: disable=g-import-not-at-top

  video_io.check_output(args.output)  # before loading or compiling anything
  for name in ("steps", "frames", "num_videos", "upscale"):
    value = getattr(args, name)
    if value is not None and value < 1:
      raise ValueError(f"--{name.replace('_', '-')}={value} is not supported; expected an integer >= 1")
  start = time.perf_counter()
  from jaxgen.pipelines.load import load_pipeline  # pylint: disable=g-import-not-at-top

  from jaxgen.pipelines import cascade  # pylint: disable=g-import-not-at-top

  if args.model in cascade.cascade_names():
    # Each stage has its own sampler, steps and guidance, set in the cascade's config.
    for name in ("steps", "sampler", "guidance"):
      if getattr(args, name) is not None:
        raise ValueError(f"--{name}={getattr(args, name)!r} is not supported with the cascade "
                         f"--model={args.model!r}; expected the stages' own settings")
    pipe, note = cascade.load_cascade(args.model)
    run_pipe = lambda: pipe(args.prompt, negative_prompt=args.negative_prompt, num_frames=args.frames,
                            seed=args.seed, num_videos=args.num_videos)
  else:
    pipe, note = load_pipeline(args.model)
    run_pipe = lambda: pipe(args.prompt, negative_prompt=args.negative_prompt, num_frames=args.frames,
                            num_steps=args.steps, sampler=args.sampler, guidance_scale=args.guidance,
                            seed=args.seed, num_videos=args.num_videos)
  if note:
    print(f"note: {note}")
  videos = run_pipe()
  written = []
  stem, ext = os.path.splitext(args.output)
  for i, video in enumerate(videos):
    path = args.output if len(videos) == 1 else f"{stem}_{i}{ext}"
    written += video_io.write_video(path, video_io.upscale(video, args.upscale), fps=args.fps)
  shown = written if len(written) <= 3 else written[:2] + ["..."] + written[-1:]
  print(f"wrote {', '.join(shown)} ({videos.shape[1]} frames, {videos.shape[2]}x{videos.shape[3]}"
        f"{f' upscaled x{args.upscale}' if args.upscale > 1 else ''}) in {time.perf_counter() - start:.1f}s")
  return 0
