"""Atomic file writes: a reader (or a crash) never sees half a file."""

import os
import tempfile


def usual_mode(path: str, directory: bool = False) -> None:
  """Gives `path` the permissions open() or mkdir() would have: mkstemp and mkdtemp make
  temporaries private (0600, 0700), which would otherwise stay on the renamed result."""
  umask = os.umask(0)
  os.umask(umask)
  os.chmod(path, (0o777 if directory else 0o666) & ~umask)


def write_text(path: str | os.PathLike, text: str) -> str:
  """Writes `text` to `path` through a temporary file beside it and a rename; returns the path."""
  path = os.path.abspath(os.fspath(path))
  fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=os.path.basename(path) + ".tmp-")
  try:
    with os.fdopen(fd, "w") as f:
      f.write(text)
    usual_mode(tmp)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise
  return path
