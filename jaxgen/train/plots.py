"""PNG outputs of a run: the loss curve and a grid of sample videos.

Drawn with Pillow (already required by imageio) rather than matplotlib, which is not a dependency.
"""

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from jaxgen import files


def write_curve(path: str, steps: Sequence[float], values: Sequence[float], *,
                title: str = "loss", size: tuple[int, int] = (640, 400)) -> None:
  """A line plot of values [N] over steps [N] on a log y axis (linear if any value <= 0)."""
  steps, values = np.asarray(steps, np.float64), np.asarray(values, np.float64)
  keep = np.isfinite(values)
  steps, values = steps[keep], values[keep]
  width, height = size
  left, right, top, bottom = 70, 20, 30, 40
  image = Image.new("RGB", size, "white")
  draw = ImageDraw.Draw(image)
  draw.text((left, 8), title, fill="black")
  draw.rectangle([left, top, width - right, height - bottom], outline="black")
  if len(values) == 0:
    files.write_file(path, image.save)
    return
  log = bool(np.all(values > 0))
  y = np.log10(values) if log else values
  y_lo, y_hi = float(y.min()), float(y.max())
  if y_hi - y_lo < 1e-12:
    y_lo, y_hi = y_lo - 0.5, y_hi + 0.5
  x_lo, x_hi = float(steps.min()), float(max(steps.max(), steps.min() + 1))
  px = left + (steps - x_lo) / (x_hi - x_lo) * (width - left - right)
  py = height - bottom - (y - y_lo) / (y_hi - y_lo) * (height - top - bottom)
  for frac in np.linspace(0, 1, 5):  # y ticks
    value = y_lo + frac * (y_hi - y_lo)
    yy = height - bottom - frac * (height - top - bottom)
    draw.line([left - 4, yy, left, yy], fill="black")
    draw.text((4, yy - 6), f"{10 ** value if log else value:.3g}", fill="black")
  for frac in np.linspace(0, 1, 5):  # x ticks
    xx = left + frac * (width - left - right)
    draw.line([xx, height - bottom, xx, height - bottom + 4], fill="black")
    draw.text((xx - 12, height - bottom + 8), f"{x_lo + frac * (x_hi - x_lo):.0f}", fill="black")
  draw.text((width // 2 - 10, height - 16), "step", fill="black")
  if len(px) == 1:
    draw.ellipse([px[0] - 2, py[0] - 2, px[0] + 2, py[0] + 2], fill="navy")
  else:
    draw.line(list(zip(px.tolist(), py.tolist())), fill="navy", width=2)
  files.write_file(path, image.save)


def video_grid(videos: np.ndarray, scale: int = 2, gap: int = 2) -> np.ndarray:
  """Videos uint8 [..., N, T, H, W, 3] -> one image, a row per video and a column per frame."""
  videos = np.asarray(videos)
  videos = videos.reshape((-1,) + videos.shape[-4:])
  n, t, h, w, c = videos.shape
  h2, w2 = h * scale, w * scale
  grid = np.full((n * (h2 + gap) + gap, t * (w2 + gap) + gap, c), 64, np.uint8)
  up = videos.repeat(scale, axis=2).repeat(scale, axis=3)
  for i in range(n):
    for j in range(t):
      y, x = gap + i * (h2 + gap), gap + j * (w2 + gap)
      grid[y:y + h2, x:x + w2] = up[i, j]
  return grid


def write_video_grid(path: str, videos: np.ndarray, scale: int = 2) -> None:
  """Writes `video_grid(videos)` as a PNG."""
  files.write_file(path, Image.fromarray(video_grid(videos, scale)).save)

