"""Colour hints: points whose colour a person chooses, and the planes the network sees.

A hint file (version 1) is the public interface:

  {"version": 1, "hints": [{"x": 120, "y": 45, "size": 6, "color": "#3a6ea5"},
                           {"x": 300, "y": 210, "ab": [12.5, -30.0]}]}

- `x`, `y`: the 0-based column and row of the patch's centre, in the full-size
  image as images.load_luminance returns it (EXIF orientation applied);
- `size` (optional, 1 to 128): the patch covers columns x - (size - 1) // 2 to
  x + size // 2, rows alike, clipped to the image; by default `default_size`;
- exactly one colour: `color` ("#rrggbb", whose L* is dropped: the photo keeps its
  own lightness) or `ab` (CIE L*a*b* a*, b*, finite, within +-128).

Hints are rasterised with numpy outside jit into three planes (a*, b*, mask), so the
number of hints never causes a compile. The same module simulates hints from a
photo's true colours, for training and for `evaluate.py --hints N`.
"""
import dataclasses
import json
import math
import re

import jax.numpy as jnp
import numpy as np

from jaxcolor import color

VERSION = 1
MAX_HINTS = 1000
MAX_SIZE = 128
MAX_AB = 128.0
AB_SCALE = 128.0  # the planes hold a*/AB_SCALE, b*/AB_SCALE and a 0/1 mask
NUM_PLANES = 3
_KEYS = {'x', 'y', 'size', 'color', 'ab'}
_HEX = re.compile(r'#[0-9a-fA-F]{6}')


class HintError(ValueError):
  """A hint file that cannot be used; the message names the file (and the hint)."""


@dataclasses.dataclass(frozen=True)
class Hint:
  x: int
  y: int
  size: int
  ab: tuple  # (a*, b*)

  def patch(self, height, width):
    """(top, bottom, left, right) of the patch, clipped to the image; bottom and
    right exclusive."""
    return (max(self.y - (self.size - 1) // 2, 0), min(self.y + self.size // 2 + 1, height),
            max(self.x - (self.size - 1) // 2, 0), min(self.x + self.size // 2 + 1, width))

  def to_json(self):
    return {'x': self.x, 'y': self.y, 'size': self.size, 'ab': [self.ab[0], self.ab[1]]}


def default_size(height, width):
  """A patch's side when the file gives none: 6 px at a short side of 256, in proportion."""
  return max(1, round(6 * min(height, width) / 256))


def hex_to_ab(text):
  """'#rrggbb' -> its (a*, b*) under the project's sRGB -> L*a*b*."""
  rgb = np.asarray([int(text[i:i + 2], 16) for i in (1, 3, 5)], np.float64) / 255
  _, a, b = color.rgb_to_lab(rgb)
  return float(a), float(b)


def _integer(value):
  return isinstance(value, int) and not isinstance(value, bool)


def _number(value):
  return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def parse(document, height, width, name='hints'):
  """A decoded hint file (dict) for an image of height x width -> [Hint]; any
  problem is a HintError naming `name` and the hint's index."""
  if not isinstance(document, dict):
    raise HintError(f'{name}: not a hint file: expected a JSON object with "version" and "hints"')
  unknown = set(document) - {'version', 'hints'}
  if unknown:
    raise HintError(f'{name}: unknown key {sorted(unknown)[0]!r} (expected "version", "hints")')
  if not _integer(document.get('version')) or document['version'] != VERSION:
    raise HintError(f'{name}: unknown version {document.get("version")!r} '
                    f'(this jaxcolor reads version {VERSION})')
  entries = document.get('hints')
  if not isinstance(entries, list):
    raise HintError(f'{name}: "hints" must be a list')
  if len(entries) > MAX_HINTS:
    raise HintError(f'{name}: {len(entries)} hints, more than the {MAX_HINTS} allowed')
  return [_parse_one(entry, i, height, width, name) for i, entry in enumerate(entries)]


def _parse_one(entry, i, height, width, name):
  where = f'{name}: hint {i}'
  if not isinstance(entry, dict):
    raise HintError(f'{where}: must be an object like {{"x": 10, "y": 20, "color": "#3a6ea5"}}')
  unknown = set(entry) - _KEYS
  if unknown:
    raise HintError(f'{where}: unknown key {sorted(unknown)[0]!r} '
                    f'(expected x, y, size, and color or ab)')
  for key in ('x', 'y'):
    if key not in entry:
      raise HintError(f'{where}: "{key}" is missing')
    if not _integer(entry[key]):
      raise HintError(f'{where}: "{key}" must be an integer, not {entry[key]!r}')
  x, y = entry['x'], entry['y']
  if not (0 <= x < width and 0 <= y < height):
    raise HintError(f'{where}: the point ({x}, {y}) is outside the {width}x{height} image')
  size = entry.get('size', default_size(height, width))
  if not _integer(size) or not 1 <= size <= MAX_SIZE:
    raise HintError(f'{where}: "size" must be an integer from 1 to {MAX_SIZE}, not {size!r}')
  if ('color' in entry) == ('ab' in entry):
    raise HintError(f'{where}: give exactly one of "color" ("#rrggbb") and "ab" ([a*, b*])')
  if 'color' in entry:
    text = entry['color']
    if not isinstance(text, str) or not _HEX.fullmatch(text):
      raise HintError(f'{where}: "color" must be "#rrggbb", not {text!r}')
    ab = hex_to_ab(text)
  else:
    ab = entry['ab']
    if (not isinstance(ab, list) or len(ab) != 2 or not all(map(_number, ab))
        or max(abs(ab[0]), abs(ab[1])) > MAX_AB):
      raise HintError(f'{where}: "ab" must be two finite numbers within +-{MAX_AB:g}, '
                      f'not {ab!r}')
    ab = (float(ab[0]), float(ab[1]))
  return Hint(x, y, size, ab)


def load(path, height, width):
  """Reads and checks one hint file for an image of height x width -> [Hint]."""
  try:
    text = open(path, 'rb').read().decode('utf-8')
  except OSError as e:
    raise HintError(f'{path}: cannot read the hint file: {e.strerror or e}') from None
  except UnicodeDecodeError:
    raise HintError(f'{path}: not a hint file: not UTF-8 text') from None
  try:
    document = json.loads(text, parse_constant=reject_constant)
  except (json.JSONDecodeError, ValueError) as e:
    raise HintError(f'{path}: not valid JSON: {e}') from None
  return parse(document, height, width, name=str(path))


def reject_constant(name):
  """json.loads' parse_constant: NaN and Infinity are not JSON, and no hint holds them."""
  raise ValueError(f'{name} is not a number JSON allows')


def to_document(hints):
  """[Hint] -> the hint file's JSON object."""
  return {'version': VERSION, 'hints': [hint.to_json() for hint in hints]}


def rasterize(hints, height, width):
  """[Hint] -> H x W x 3 float32 planes (a*/AB_SCALE, b*/AB_SCALE, mask); later
  hints cover earlier ones where patches overlap. No hints: all zeros."""
  planes = np.zeros((height, width, NUM_PLANES), np.float32)
  for hint in hints:
    top, bottom, left, right = hint.patch(height, width)
    planes[top:bottom, left:right] = (hint.ab[0] / AB_SCALE, hint.ab[1] / AB_SCALE, 1.0)
  return planes


def keep_colours(ab01_HxWx2, x_HxWxC):
  """The network's a*b* (scaled to [0, 1], H x W x 2) with every hinted pixel
  given its hint's colour exactly, as people steering a colorizer ask; `x` is
  the network's input (L, then for a model with hints the planes). Traceable; a
  model without hints, or no hint, leaves the a*b* as they are."""
  if x_HxWxC.shape[-1] == 1:
    return ab01_HxWx2
  planes = x_HxWxC[..., 1:1 + NUM_PLANES]
  hinted = color.normalize_ab(planes[..., :2] * AB_SCALE)
  return jnp.where(planes[..., 2:] > 0.5, hinted, ab01_HxWx2)


def simulate(ab_HxWx2, rng, count=None, size=None, p=1 / 8, max_side=9):
  """Hints as a person might give them, from a photo's true a*b* (H x W x 2).

  Zhang et al. 2017's recipe: `count` hints (by default geometric, P(n) = p (1-p)^n,
  so about one photo in eight gets none), centres from a Gaussian around the
  image's centre (standard deviation a quarter of each side, clipped), patch sides
  uniform from 1 to `max_side` px at a short side of 256 and in proportion
  (or all `size`), each coloured with its patch's mean true a*b*. Deterministic
  for a given numpy Generator `rng`; the first n hints do not depend on `count`."""
  height, width = ab_HxWx2.shape[:2]
  if count is None:
    count = int(rng.geometric(p)) - 1
  scale = min(height, width) / 256
  hints = []
  for _ in range(count):
    y, x = rng.normal((height / 2, width / 2), (height / 4, width / 4))
    side = rng.integers(1, max_side + 1)
    hint = Hint(int(np.clip(round(x), 0, width - 1)), int(np.clip(round(y), 0, height - 1)),
                size or max(1, round(side * scale)), (0.0, 0.0))
    top, bottom, left, right = hint.patch(height, width)
    a, b = np.mean(ab_HxWx2[top:bottom, left:right], axis=(0, 1), dtype=np.float64)
    hints.append(dataclasses.replace(hint, ab=(float(a), float(b))))
  return hints


def with_hint_inputs(variables):
  """Variables of a model without hints -> those of the same model with hints,
  the hint planes' input weights zero: with no hints it computes what it did."""
  params = dict(variables['params'])
  low = dict(params['low_level'])
  first = dict(low['conv1'])
  conv = dict(first['conv'])
  kernel = conv['kernel']
  if kernel.shape[2] != 1:
    raise ValueError(f'the first convolution already has {kernel.shape[2]} input channels')
  conv['kernel'] = jnp.concatenate(
      [kernel, jnp.zeros(kernel.shape[:2] + (NUM_PLANES,) + kernel.shape[3:],
                         kernel.dtype)], axis=2)
  first['conv'], low['conv1'], params['low_level'] = conv, first, low
  return {**variables, 'params': params}
