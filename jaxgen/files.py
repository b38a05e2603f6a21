"""Atomic file writes: a reader (or a crash) never sees half a file."""

import os
import tempfile
from collections.abc import Callable


def usual_mode(path: str, directory: bool = False) -> None:
  """Gives `path` the permissions open() or mkdir() would have: mkstemp and mkdtemp make
  temporaries private (0600, 0700), which would otherwise stay on the renamed result."""
  umask = os.umask(0)
  os.umask(umask)
  os.chmod(path, (0o777 if directory else 0o666) & ~umask)


def write_file(path: str | os.PathLike, write: Callable[[str], None]) -> str:
  """Writes `path` atomically: `write(tmp)` fills a temporary file beside it (with the same
  extension, for writers that pick the format from it), which is then renamed into place with the
  usual permissions. On any error the temporary is removed and `path` is untouched. Returns the
  absolute path."""
  path = os.path.abspath(os.fspath(path))
  directory, name = os.path.split(path)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=name + ".tmp-", suffix=os.path.splitext(name)[1])
  os.close(fd)
  try:
    write(tmp)
    usual_mode(tmp)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise
  return path


def write_text(path: str | os.PathLike, text: str) -> str:
  """Writes `text` to `path` atomically (write_file); returns the absolute path."""
  def write(tmp: str) -> None:
    with open(tmp, "w") as f:
      f.write(text)

  return write_file(path, write)
