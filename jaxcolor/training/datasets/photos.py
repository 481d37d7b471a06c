"""Photo checks shared by the dataset builders: decode, greyscale test, downscale.

A colorization network learns nothing from a greyscale photo (its a*b* target
is zero everywhere), so the builders drop them, together with files that do
not decode, and count both.
"""
import collections
import io
import math

from PIL import Image, ImageOps

from jaxcolor import images

GREYSCALE = 'greyscale'
UNREADABLE = 'unreadable'
_ORIENTATION = 0x0112   # EXIF tag; a rotated photo is stored upright
_JPEG_QUALITY = 95


def _open(data, max_short_side):
  """Encoded bytes -> (fully decoded PIL image, format, original mode, rotated)."""
  image = Image.open(io.BytesIO(data))
  fmt, mode = image.format, image.mode
  rotated = image.getexif().get(_ORIENTATION, 1) != 1
  scale = max_short_side / min(image.size) if max_short_side else 1.0
  if scale < 1 and fmt == 'JPEG':
    # Decode big JPEGs at 1/2, 1/4 or 1/8 size directly: many times faster.
    image.draft('RGB', tuple(math.ceil(s * scale) for s in image.size))
  image.load()  # raises on truncated or corrupt data
  return image, fmt, mode, rotated


def prepare_photo(data, *, max_short_side=0, grey_threshold=images.GREY_THRESHOLD):
  """Encoded photo bytes -> (bytes to store, None) or (None, reason it is skipped).

  The stored bytes decode to an upright RGB image whose short side is at most
  `max_short_side` (0 = any size). The original bytes are kept when they already
  are such a JPEG or PNG; anything else is re-encoded as JPEG.
  """
  try:
    image, fmt, mode, rotated = _open(data, max_short_side)
  except Exception:  # PIL raises many types for broken files  # pylint: disable=broad-except
    return None, UNREADABLE
  if images.chroma_score(image) < grey_threshold:
    return None, GREYSCALE
  resized = bool(max_short_side) and min(image.size) > max_short_side
  if not resized and not rotated and fmt in ('JPEG', 'PNG') and mode == 'RGB':
    return data, None
  image = ImageOps.exif_transpose(image).convert('RGB')
  if resized:
    scale = max_short_side / min(image.size)
    size = tuple(max(max_short_side, round(s * scale)) for s in image.size)
    image = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
  out = io.BytesIO()
  image.save(out, format='JPEG', quality=_JPEG_QUALITY)
  return out.getvalue(), None


class SkipLog:
  """Counts skipped files by reason and remembers the first few names of each."""

  def __init__(self, keep=20):
    self.counts = collections.Counter()
    self.examples = collections.defaultdict(list)
    self._keep = keep

  def add(self, reason, name):
    self.counts[reason] += 1
    if len(self.examples[reason]) < self._keep:
      self.examples[reason].append(name)

  def as_dict(self):
    """JSON-ready summary: {'greyscale': n, 'unreadable': m, 'examples': {...}}."""
    summary = {GREYSCALE: self.counts[GREYSCALE], UNREADABLE: self.counts[UNREADABLE]}
    summary.update({k: v for k, v in self.counts.items() if k not in summary})
    summary['examples'] = dict(self.examples)
    return summary
