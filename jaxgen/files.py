"""Atomic writes of files and directories: a reader (or a crash) never sees half of one."""

from collections.abc import Callable
import functools
import os
import shutil
import tempfile


@functools.cache
def _umask() -> int:
  # Reading the umask means setting it; once per process keeps the moment it is 0 (when files
  # other threads create, e.g. Orbax's async saves, would be made world-writable) to one.
  umask = os.umask(0)
  os.umask(umask)
  return umask


def usual_mode(path: str, directory: bool = False) -> None:
  """Gives `path` the permissions open() or mkdir() would have: mkstemp and mkdtemp make
  temporaries private (0600, 0700), which would otherwise stay on the renamed result."""
  os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


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


def write_directory(dst: str, fill: Callable[[str], None]) -> None:
  """Writes directory `dst` atomically: `fill(tmp)` writes into a fresh directory beside it,
  which is then renamed into place (replacing an existing `dst`), so `dst` is whole or absent.
  Everything in it gets the usual permissions (usual_mode): mkdtemp makes the directory
  private, and safetensors' save_file its files."""
  parent = os.path.dirname(os.path.abspath(dst))
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=os.path.basename(dst) + ".tmp-", dir=parent)
  try:
    fill(tmp)
    for root, _, names in os.walk(tmp):
      usual_mode(root, directory=True)
      for name in names:
        usual_mode(os.path.join(root, name))
    if os.path.exists(dst):  # move the old one aside first, so a crash keeps one copy.
      old = tempfile.mkdtemp(prefix=os.path.basename(dst) + ".old-", dir=parent)
      os.rename(dst, os.path.join(old, "x"))
      os.rename(tmp, dst)
      shutil.rmtree(old)
    else:
      os.rename(tmp, dst)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
