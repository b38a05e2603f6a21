"""Atomic file writes: a reader (or a crash) never sees half a file."""

import os
import tempfile


def write_text(path: str | os.PathLike, text: str) -> str:
  """Writes `text` to `path` through a temporary file beside it and a rename; returns the path."""
  path = os.path.abspath(os.fspath(path))
  fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=os.path.basename(path) + ".tmp-")
  try:
    with os.fdopen(fd, "w") as f:
      f.write(text)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise
  return path
