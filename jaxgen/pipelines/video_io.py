"""Writing videos: GIF, MP4 or numbered PNG frames, chosen by extension, written atomically."""

import functools
import os
import warnings

import numpy as np

from jaxgen import files

FORMATS = (".gif", ".mp4", ".png")


def check_output(path: str) -> str:
  """The lower-case extension of `path`, or a ValueError naming the supported ones."""
  ext = os.path.splitext(path)[1].lower()
  if ext not in FORMATS:
    raise ValueError(f"output={path!r} has extension {ext!r}; expected one of {', '.join(FORMATS)}")
  return ext


def upscale(video: np.ndarray, factor: int) -> np.ndarray:
  """Nearest-neighbour upscaling of [T, H, W, C] frames, to keep small videos crisp."""
  return video if factor == 1 else video.repeat(factor, axis=1).repeat(factor, axis=2)


def write_video(path: str, video: np.ndarray, fps: float = 8.0) -> list[str]:
  """Writes uint8 frames [T, H, W, 3]; returns the files written.

  .gif loops forever; .mp4 is H.264 through imageio-ffmpeg; .png writes one file per
  frame, PATH_000.png, PATH_001.png, ... Each file appears whole or not at all.
  """
  ext = check_output(path)
  video = np.asarray(video)
  if video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] != 3:
    raise ValueError(f"video has dtype {video.dtype} and shape {video.shape}; expected uint8 [T, H, W, 3]")
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  if ext == ".png":
    stem = os.path.splitext(path)[0]
    targets = [(f"{stem}_{i:03d}.png", frame) for i, frame in enumerate(video)]
  else:
    targets = [(path, video)]
  for target, data in targets:
    files.write_file(target, functools.partial(_write, ext=ext, data=data, fps=fps))
  return [target for target, _ in targets]


def _write(tmp: str, *, ext: str, data: np.ndarray, fps: float) -> None:
  import imageio.v3 as iio  # pylint: disable=g-import-not-at-top

  if ext == ".gif":
    iio.imwrite(tmp, data, extension=".gif", duration=1000.0 / fps, loop=0)
  elif ext == ".mp4":  # imageio-ffmpeg; macro_block_size=1 keeps sizes that are not multiples of 16
    with warnings.catch_warnings():
      # ffmpeg runs as a subprocess, whose fork is followed at once by exec: the deadlock JAX
      # warns of (a forked child running Python while JAX's threads hold locks) cannot happen.
      warnings.filterwarnings("ignore", message="os.fork", category=RuntimeWarning)
      iio.imwrite(tmp, data, extension=".mp4", fps=fps, macro_block_size=1)
  else:
    iio.imwrite(tmp, data, extension=".png")
