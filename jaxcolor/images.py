"""Reading photos into luminance and writing results, with errors a user can act on.

Every problem with a file becomes an ImageError whose message names the file
and says what is wrong; callers report it and go on with the next file.
"""
import collections
import concurrent.futures
import dataclasses
import io
import os
import pathlib
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from jaxcolor import color
from jaxcolor import files

# Refuse images above this many pixels before decoding them (the header is
# enough), so a forged 100000 x 100000 header cannot exhaust memory.
MAX_PIXELS = 8192 * 8192
# Pillow infers the output format from these extensions; anything else -> PNG.
WRITABLE = {'.jpg': 'JPEG', '.jpeg': 'JPEG', '.png': 'PNG', '.bmp': 'BMP',
            '.tif': 'TIFF', '.tiff': 'TIFF', '.webp': 'WEBP'}
READABLE = set(WRITABLE) | {'.gif', '.ppm', '.pgm', '.pbm', '.jp2', '.jfif'}
# chroma_score below which a photo counts as grey. Measured on ~2500 mixed
# photos: greyscale JPEGs saved as RGB score <= 0.01 and old toned (sepia)
# prints <= 0.05, while colour photos of a small object on white score > 0.06.
GREY_THRESHOLD = 0.05
_THUMB = 64  # the greyscale test runs on a thumbnail: cheap at any size


class ImageError(Exception):
  """A file that cannot be colorized; the message names it and the problem."""


class TooManyPixels(ImageError):
  """An image refused from its header: more pixels than the limit."""


@dataclasses.dataclass
class LoadedImage:
  l: np.ndarray          # H x W float32 L* scaled to [0, 1]
  had_colour: bool       # the file was a colour photo (its colour was dropped)
  notes: list[str]       # things the user should hear about (first frame only, ...)
  format: str | None = None  # Pillow's name of the file's format ('JPEG', 'PNG', ...)


def load_luminance(source, max_pixels=MAX_PIXELS, name=None):
  """Reads any image Pillow understands and returns its L channel in [0, 1].

  `source` is a path, or a file's content as bytes (an upload), which messages
  call `name`.
  """
  in_memory = isinstance(source, (bytes, bytearray, memoryview))
  path = pathlib.Path(name or 'upload') if in_memory else pathlib.Path(source)
  notes = []
  try:
    empty = len(source) == 0 if in_memory else path.is_file() and path.stat().st_size == 0
    if empty:
      raise ImageError(f'{path}: empty file (0 bytes)')
    with Image.open(io.BytesIO(source) if in_memory else path) as image:
      width, height = image.size
      if width * height > max_pixels:
        raise TooManyPixels(f'{path}: {width}x{height} pixels is more than the limit of '
                            f'{max_pixels} (raise it with --max-pixels)')
      file_format = image.format
      frames = _frame_count(image, path)
      if frames > 1:
        notes.append(f'{path}: has {frames} frames; colorizing the first')
      image.load()
      image = _upright(image, path, notes)
      rgb = _to_rgb_float(image)
  except ImageError:
    raise
  except FileNotFoundError:
    raise ImageError(f'{path}: no such file') from None
  except IsADirectoryError:
    raise ImageError(f'{path}: is a folder, not an image') from None
  except PermissionError:
    raise ImageError(f'{path}: permission denied') from None
  except UnidentifiedImageError:
    raise ImageError(f'{path}: not an image file Pillow can read') from None
  except Image.DecompressionBombError as e:
    raise TooManyPixels(f'{path}: refused, too many pixels ({e})') from None
  except MemoryError:
    raise
  except Exception as e:  # Pillow's readers raise many types on damaged data
    raise ImageError(f'{path}: damaged or unsupported image ({_reason(e)})') from None
  lab = color.rgb_to_lab(rgb)
  return LoadedImage(color.normalize_l(lab[..., 0]).astype(np.float32),
                     had_colour=not is_grey(rgb), notes=notes, format=file_format)


def find_images(folder, extensions=READABLE, skip=None):
  """Files under `folder` whose suffix is in `extensions`, searched recursively
  (following links) in a fixed order: each folder's files by name, then its
  sub-folders by name. Hidden files and folders (names starting with '.') and
  the folder `skip` (an output folder inside the input folder) are left out.
  infer.py, evaluate.py and training all search folders this way."""
  seen = {os.path.realpath(skip)} if skip else set()  # a link back up is not walked again
  found = []
  for root, dirs, names in os.walk(folder, followlinks=True):
    seen.add(os.path.realpath(root))
    dirs[:] = sorted(d for d in dirs if not d.startswith('.') and
                     os.path.realpath(os.path.join(root, d)) not in seen)
    found.extend(pathlib.Path(root, name) for name in sorted(names)
                 if not name.startswith('.') and pathlib.Path(name).suffix.lower() in extensions)
  return found


def chroma_score(image):
  """99th percentile over pixels of (max - min channel) / 255 on a thumbnail, in
  [0, 1], of a PIL image. A percentile rather than the mean, so that a small
  coloured object on a white background still counts as colour."""
  thumb = image.convert('RGB')
  thumb.thumbnail((_THUMB, _THUMB))
  x_HxWx3 = np.asarray(thumb, dtype=np.int16)
  return float(np.percentile(x_HxWx3.max(-1) - x_HxWx3.min(-1), 99)) / 255.0


def is_grey(rgb):
  """Whether an H x W x 3 sRGB image in [0, 1] is a greyscale (or toned) photo:
  the one test that training data, evaluation, infer.py and video use."""
  return chroma_score(Image.fromarray(to_uint8(rgb))) < GREY_THRESHOLD


def ordered_parallel_map(fn, items, num_threads=8, window=256):
  """Yields fn(item) for each item, in order, using threads.

  PIL releases the GIL while decoding and encoding, so threads scale. At most
  `window` items are in flight, so memory stays bounded on a 20 GB tar stream.
  """
  with concurrent.futures.ThreadPoolExecutor(num_threads) as pool:
    pending = collections.deque()
    for item in items:
      pending.append(pool.submit(fn, item))
      if len(pending) >= window:
        yield pending.popleft().result()
    while pending:
      yield pending.popleft().result()


def _reason(error):
  """Pillow's words for a message; with the exception's type unless it is one of
  the usual OSError, SyntaxError and ValueError, for words such as 'index out of
  range' (IndexError) or '256' (KeyError) say little alone."""
  if isinstance(error, (OSError, SyntaxError, ValueError)) and str(error):
    return str(error)
  kind = type(error)
  kind = kind.__name__ if kind.__module__ == 'builtins' else f'{kind.__module__}.{kind.__name__}'
  return f'{kind}: {error}' if str(error) else kind


def _frame_count(image, path):
  """How many frames `image` has; counting reads every frame's header, so a file
  damaged after its first frame (a truncated animated GIF, a broken second TIFF
  page) is an ImageError saying so."""
  try:
    return getattr(image, 'n_frames', 1)
  except MemoryError:
    raise
  except Exception as e:  # GIF and TIFF raise struct.error, IndexError, TypeError, ...
    raise ImageError(f'{path}: damaged image: its frames after the first cannot be read '
                     f'({_reason(e)})') from None


def _upright(image, path, notes):
  """Applies the EXIF orientation; a damaged EXIF block is ignored with a note."""
  try:
    with warnings.catch_warnings():
      warnings.simplefilter('ignore')
      return ImageOps.exif_transpose(image)
  except Exception as e:  # Pillow raises many types for broken EXIF data
    notes.append(f'{path}: unreadable EXIF data ({type(e).__name__}); orientation ignored')
    return image


def _to_rgb_float(image):
  """Any Pillow mode -> H x W x 3 float64 sRGB in [0, 1]; transparency over white."""
  if image.mode in ('I;16', 'I;16L', 'I;16B', 'I;16N', 'I'):
    grey = np.asarray(image, dtype=np.float64) / 65535.0
    return np.repeat(np.clip(grey, 0, 1)[..., None], 3, axis=-1)
  if image.mode == 'F':
    grey = np.asarray(image, dtype=np.float64)
    return np.repeat(np.clip(grey, 0, 1)[..., None], 3, axis=-1)
  if image.mode in ('RGBA', 'LA', 'PA') or 'transparency' in image.info:
    image = image.convert('RGBA')
    background = Image.new('RGBA', image.size, (255, 255, 255, 255))
    image = Image.alpha_composite(background, image)
  return np.asarray(image.convert('RGB'), dtype=np.float64) / 255.0


def to_uint8(rgb):
  """Float sRGB in [0, 1] -> uint8."""
  return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def output_format(path):
  """The Pillow format for an output path's extension, or None if not writable."""
  return WRITABLE.get(pathlib.Path(path).suffix.lower())


def result_suffix(name):
  """The extension of an input's result, which names its format: the input's own
  when WRITABLE has it ('x.JPG' -> '.JPG', whatever the content), else '.png'."""
  return pathlib.PurePath(name).suffix if output_format(name) else '.png'


def writable_format(file_format):
  """The Pillow format a result is written in: `file_format` (the input's) when
  WRITABLE has it, else PNG (GIF, PPM, ... or None)."""
  return file_format if file_format in WRITABLE.values() else 'PNG'


def encode_rgb(rgb, file_format):
  """H x W x 3 sRGB in [0, 1] -> the bytes of an image file in writable_format(file_format)."""
  file_format = writable_format(file_format)
  options = {'quality': 95} if file_format in ('JPEG', 'WEBP') else {}
  encoded = io.BytesIO()
  Image.fromarray(to_uint8(rgb)).save(encoded, format=file_format, **options)
  return encoded.getvalue()


def save_rgb(rgb, path, overwrite=False):
  """Writes H x W x 3 sRGB in [0, 1] whole or not at all (files.writing); never
  replaces a file unless `overwrite`."""
  path = pathlib.Path(path)
  # Encoded first: a photo that cannot be encoded creates no file at all.
  encoded = encode_rgb(rgb, output_format(path))
  with files.writing(path, overwrite, ImageError) as partial:
    partial.write_bytes(encoded)
