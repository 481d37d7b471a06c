"""Writing an output whole or not at all, never over a user's file unless asked.

Every output (images, videos, exported models) is first written to a hidden
partial file of a unique name beside it, then moved into place in one step, so
a full disk or a crash leaves no half-written output, and no file of the user's
is ever written to, whatever its name.
"""
import contextlib
import os
import pathlib
import secrets


def already_exists(path):
  """The message for an output that exists, without --overwrite."""
  return f'{path}: already exists; not replacing it (use --overwrite)'


@contextlib.contextmanager
def writing(path, overwrite, error):
  """Yields the path of a new empty hidden file in `path`'s folder, to write the
  output to; when the block ends, moves it to `path`. Without `overwrite` an
  existing `path` (even one that appeared meanwhile) is kept. Whatever fails,
  the partial file is removed; an OSError (a full disk, an existing `path`)
  becomes `error`, an exception class, with a message naming `path`."""
  path, partial = pathlib.Path(path), None
  try:
    partial = _new_partial(path)
    yield partial
    if overwrite:
      os.replace(partial, path)
    else:
      _move_without_overwrite(partial, path)
  except FileExistsError:
    raise error(already_exists(path)) from None
  except OSError as e:
    raise error(f'{path}: cannot write ({e.strerror or e})') from None
  finally:
    if partial:
      partial.unlink(missing_ok=True)


def _new_partial(path):
  """A new empty file '.STEM.RANDOM.partial.SUFFIX' beside `path`: the suffix
  stays last for writers that choose a format from it (PyAV), and it gets the
  usual permissions (tempfile.mkstemp's are the owner's only)."""
  while True:
    partial = path.with_name(f'.{path.stem}.{secrets.token_hex(4)}.partial{path.suffix}')
    try:
      with open(partial, 'xb'):
        return partial
    except FileExistsError:  # another run's, however unlikely: draw again
      continue


def _move_without_overwrite(partial, path):
  """Moves `partial` to `path`, or raises FileExistsError if `path` exists."""
  try:
    os.link(partial, path)  # fails if `path` exists, in one step
  except FileExistsError:
    raise
  except OSError:  # a file system without hard links (exFAT, FAT, some network shares)
    with open(path, 'xb'):  # claims the name: fails if it exists, in one step
      pass
    try:
      os.replace(partial, path)  # over the empty file just created, never the user's
    except BaseException:
      path.unlink(missing_ok=True)
      raise
