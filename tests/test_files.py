"""Outputs are written whole or not at all, and never over a user's file unless asked."""
import contextlib
import errno
import os
import resource
import signal

import numpy as np
import pytest

from jaxcolor import files
from jaxcolor import images


@contextlib.contextmanager
def disk_full_after(size):
  """Writes past `size` bytes fail (EFBIG), as on a full disk."""
  limits = resource.getrlimit(resource.RLIMIT_FSIZE)
  handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the error, not the signal
  resource.setrlimit(resource.RLIMIT_FSIZE, (size, limits[1]))
  try:
    yield
  finally:
    resource.setrlimit(resource.RLIMIT_FSIZE, limits)
    signal.signal(signal.SIGXFSZ, handler)


def noise(side=200):
  """An image that PNG cannot compress: ~120 kB."""
  return np.random.default_rng(0).random((side, side, 3))


def test_a_full_disk_leaves_no_image_and_no_partial(tmp_path):
  path = tmp_path / 'photo.png'
  with disk_full_after(10_000), pytest.raises(images.ImageError) as error:
    images.save_rgb(noise(), path)
  assert str(error.value) == f'{path}: cannot write (File too large)'
  assert not list(tmp_path.iterdir())
  path.write_bytes(b'mine')
  with disk_full_after(10_000), pytest.raises(images.ImageError):
    images.save_rgb(noise(), path, overwrite=True)
  assert [p.name for p in tmp_path.iterdir()] == ['photo.png'] and path.read_bytes() == b'mine'


def test_an_existing_file_is_kept_unless_overwrite(tmp_path):
  path = tmp_path / 'photo.png'
  images.save_rgb(noise(8), path)
  umask = os.umask(0)
  os.umask(umask)
  assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not the owner-only of a temp file
  path.write_bytes(b'mine')
  with pytest.raises(images.ImageError, match='already exists; not replacing it'):
    images.save_rgb(noise(8), path)
  assert path.read_bytes() == b'mine'
  images.save_rgb(noise(8), path, overwrite=True)
  assert path.read_bytes().startswith(b'\x89PNG')
  assert [p.name for p in tmp_path.iterdir()] == ['photo.png']


def test_file_systems_without_hard_links(tmp_path, monkeypatch):
  def no_links(*_):  # as exFAT, FAT and some network shares answer
    raise OSError(errno.EPERM, 'Operation not permitted')
  monkeypatch.setattr(os, 'link', no_links)
  path = tmp_path / 'photo.png'
  images.save_rgb(noise(8), path)
  assert path.read_bytes().startswith(b'\x89PNG')
  path.write_bytes(b'mine')
  with pytest.raises(images.ImageError, match='already exists; not replacing it'):
    images.save_rgb(noise(8), path)
  assert path.read_bytes() == b'mine'
  assert [p.name for p in tmp_path.iterdir()] == ['photo.png']


def test_partial_files_are_hidden_unique_and_keep_the_suffix(tmp_path):
  (tmp_path / 'film.partial.mp4').write_bytes(b'mine')  # a user's file of a likely name
  target = tmp_path / 'film.mp4'
  with (files.writing(target, True, RuntimeError) as last,
        files.writing(target, False, RuntimeError) as first):  # placed first: the inner block
    assert first != last and first.parent == tmp_path
    assert first.name.startswith('.film.') and first.name.endswith('.partial.mp4')
    first.write_bytes(b'first')
    last.write_bytes(b'last')
  assert target.read_bytes() == b'last'
  with pytest.raises(ValueError), files.writing(target, True, RuntimeError):
    raise ValueError('the writer failed')  # not an OSError: passed on as it is
  assert sorted(p.name for p in tmp_path.iterdir()) == ['film.mp4', 'film.partial.mp4']
  assert (tmp_path / 'film.partial.mp4').read_bytes() == b'mine'
