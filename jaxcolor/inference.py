"""Colorize an image of any size with a trained Colorizer.

The local path runs at the image's own size (edge-padded to a multiple of 8),
the global path on a G x G rescale (of the image, or of a style image), and the
H/2 chrominance is upsampled bilinearly and joined with the ORIGINAL
full-resolution L. The jitted function retraces once per input resolution. A
frozen pretrained encoder names the scene from a 224 x 224 rescale of the same
image instead (encoder.label_size), in one small program of its own; the colours
are the G x G rescale's.

Images larger than the tile size run the local path tile by tile (tiling.py):
the result is the untiled one while peak memory stays that of one tile.
"""
import dataclasses
import os
import pathlib
import threading

import jax
import jax.numpy as jnp
import numpy as np

from jaxcolor import bins
from jaxcolor import buckets
from jaxcolor import checkpoint
from jaxcolor import color
from jaxcolor import encoder
from jaxcolor import hints as hints_lib
from jaxcolor import model as model_lib
from jaxcolor import ops
from jaxcolor import tiling


def enable_compilation_cache(directory=None):
  """Keeps compiled programs on disk, so a later run at a resolution it has seen
  skips XLA compilation. Default: $JAXCOLOR_CACHE_DIR, else ~/.cache/jaxcolor/xla;
  JAXCOLOR_CACHE_DIR='' turns it off."""
  directory = directory or os.environ.get(
      'JAXCOLOR_CACHE_DIR', pathlib.Path.home() / '.cache' / 'jaxcolor' / 'xla')
  if directory:
    jax.config.update('jax_compilation_cache_dir', str(directory))
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)


@dataclasses.dataclass
class Prediction:
  rgb: np.ndarray            # H x W x 3 float32 sRGB in [0, 1]
  probabilities: np.ndarray  # num_classes scene probabilities
  ab: np.ndarray             # H x W x 2 float32 a*b* of rgb (before sRGB clipping)

  def rgb_at(self, l_HxW, strength):
    """sRGB H x W x 3 with the colours at `strength` (color.with_strength) around
    the input's lightness `l_HxW`; 1 is `rgb` itself."""
    return self.rgb if strength == 1 else color.with_strength(l_HxW, self.ab, strength)

  def result_rgb(self, l_HxW, strength=1.0, side_by_side=False):
    """The image a result file holds: H x W x 3 sRGB in [0, 1], its colours at
    `strength`; H x 2W x 3 after the grey input with `side_by_side`."""
    rgb = self.rgb_at(l_HxW, strength)
    return np.concatenate([color.grey_rgb(l_HxW), rgb], axis=1) if side_by_side else rgb


def resize_to_square(x_HxWxC, size):
  """Bilinear (antialiased when shrinking) rescale to size x size x C."""
  return jax.image.resize(x_HxWxC, (size, size, x_HxWxC.shape[-1]), 'linear', antialias=True)


def without_hints(model, l_xHxWx1):
  """L (... x H x W x 1) as `model` reads it: for a model that takes hints, with
  empty hint planes after it."""
  if not model.hints:
    return l_xHxWx1
  planes = jnp.zeros(l_xHxWx1.shape[:-1] + (hints_lib.NUM_PLANES,), l_xHxWx1.dtype)
  return jnp.concatenate([l_xHxWx1, planes], axis=-1)


def pad_to_stride(x_HxWxC):
  """Pads H and W up to multiples of the local path's stride (8): L by repeating
  its edge, hint planes (any further channels) with zeros (no hint there)."""
  height, width, _ = x_HxWxC.shape
  pad = ((0, -height % model_lib.STRIDE), (0, -width % model_lib.STRIDE), (0, 0))
  return jnp.concatenate([jnp.pad(x_HxWxC[..., :1], pad, mode='edge'),
                          jnp.pad(x_HxWxC[..., 1:], pad)], axis=-1)


def full_chrominance(ab_half, height, width):
  """The local path's chrominance of the padded image (Hp/2 x Wp/2 x 2, in [0, 1])
  upsampled bilinearly and cropped to H x W x 2."""
  half_h, half_w, _ = ab_half.shape
  return jax.image.resize(ab_half, (2 * half_h, 2 * half_w, 2), 'linear')[:height, :width]


def colorize_l(model, variables, l_HxWx1, l_global_GxGx1=None, tile=None,
               temperature=bins.TEMPERATURE):
  """L in [0, 1] at any H x W -> (sRGB H x W x 3 in [0, 1], logits); see chrominance_l.
  Hinted pixels keep their hints' colours exactly (hints.keep_colours)."""
  ab01, logits = chrominance_l(model, variables, l_HxWx1, l_global_GxGx1, tile, temperature)
  ab01 = hints_lib.keep_colours(ab01, l_HxWx1)
  return color.network_to_rgb(l_HxWx1[..., :1], ab01), logits


def chrominance_l(model, variables, l_HxWx1, l_global_GxGx1=None, tile=None,
                  temperature=bins.TEMPERATURE):
  """L in [0, 1] at any H x W -> (a*b* scaled to [0, 1], H x W x 2, logits).

  For a model with hints, `l_HxWx1` and `l_global_GxGx1` carry the hint planes
  after L (H x W x 4). `l_global_GxGx1` is the global path's input; None means the image itself,
  which for a G x G image shares one run of the low-level trunk. `tile`: run
  the local path in tiles of at most tile x tile (plus context) when the image
  is larger; the result is the same. `temperature`: how a bins model's
  distribution becomes one colour (bins.decode); the paper's head ignores it.
  """
  local = pad_to_stride(l_HxWx1)
  if tile is None or max(local.shape[:2]) <= tile:
    output, logits = model.apply(
        variables, local[None],
        None if l_global_GxGx1 is None else l_global_GxGx1[None], temperature=temperature)
    ab_half = bins.to_chrominance(output, temperature)[0]
  else:
    l_global = local if l_global_GxGx1 is None else l_global_GxGx1
    scene, fusion = model.apply(variables, l_global[None], method='global_features')
    logits = model.apply(variables, scene, method='classify')
    ab_half = tiling.local_path(model, variables, local, fusion, tile, temperature)
  return full_chrominance(ab_half, *l_HxWx1.shape[:2]), logits[0]


def chrominance_padded(model, variables, x_HbxWbxC, l_global_GxGxC, valid, tile=None,
                       temperature=bins.TEMPERATURE):
  """chrominance_l for an image padded to a bucket (buckets.pad): (a*b* scaled to
  [0, 1] at the bucket's size, logits). `valid` (traced): the rows and columns the
  network reads as the image; beyond them the result is to be cropped away.
  `l_global_GxGxC` None: the image is the global input (G x G, nothing padded)."""
  local = x_HbxWbxC
  if l_global_GxGxC is None:
    output, logits = model.apply(variables, local[None], temperature=temperature)
    ab_half = bins.to_chrominance(output, temperature)[0]
  else:
    scene, fusion = model.apply(variables, l_global_GxGxC[None], method='global_features')
    logits = model.apply(variables, scene, method='classify')
    if tile is None or max(local.shape[:2]) <= tile:
      output = model.apply(variables, local[None], fusion, valid=valid, temperature=temperature,
                           method='local_path')
      ab_half = bins.to_chrominance(output, temperature)[0]
    else:
      ab_half = tiling.local_path(model, variables, local, fusion, tile, temperature, valid)
  # Beyond the image, repeat its last half-resolution row and column: the bilinear
  # upsampling then gives its edge what it gives it at the image's own size.
  half_h, half_w, _ = ab_half.shape
  rows = jnp.minimum(jnp.arange(half_h), valid[0] // 2 - 1)
  cols = jnp.minimum(jnp.arange(half_w), valid[1] // 2 - 1)
  return full_chrominance(ab_half[rows][:, cols], 2 * half_h, 2 * half_w), logits[0]


def check_temperature(temperature, has_bins):
  """`temperature` as a float, or ValueError saying why it cannot be used."""
  if not has_bins:
    raise ValueError('a temperature applies only to a model with a colour-distribution head '
                     "(trained with model.head='bins'); this model predicts colours directly")
  if not 0 < temperature <= bins.MAX_TEMPERATURE:
    raise ValueError(f'temperature {temperature:g}: must be above 0 and at most '
                     f'{bins.MAX_TEMPERATURE:g}')
  return float(temperature)


# Larger images are tiled: 2048 x 2048 (the paper's largest timing) runs whole,
# 4096 x 4096 in four 2176 x 2176 windows (13% more pixels through the local
# path; 8% more time and two thirds of the peak memory, docs/PERFORMANCE.md).
DEFAULT_TILE = 2048


class Predictor:
  """A loaded model: colorizes images, names scenes, transfers style.

  Every image is padded to a bucket (jaxcolor/buckets.py) and runs that bucket's
  compiled program, so any number of sizes needs a bounded number of programs
  (`programs`, at most `capacity`); the result is the image's own-size one up
  to float32 rounding. The scene is named from the global path's input, or, for
  a model whose labels have a view of their own (`label_size`, a frozen encoder),
  from that view of it, by one more program (the same for every bucket)."""

  def __init__(self, variables, model_config, class_names=None, tile=DEFAULT_TILE,
               kernels=None, capacity=buckets.DEFAULT_CAPACITY):
    """`tile`: images with a side above it are colorized in tiles (same result,
    bounded memory); None never tiles. `kernels`: how convolutions are computed
    (`ops.KERNELS`); None picks them for JAX's default backend. `capacity`: the
    most compiled programs kept."""
    self.model = model_lib.from_config(model_config, kernels=kernels or ops.kernels_for())
    self.tile = tile
    self.global_size = model_config.global_size
    self.variables = model_lib.with_winograd_kernels(self.model, variables, self.global_size)
    self.class_names = list(class_names or [])  # empty: trained without scene labels
    # A pretrained encoder's labels are shown only when confident (encoder.py).
    self.label_confidence = encoder.LABEL_CONFIDENCE if self.model.encoder else 0.0
    # The side of the labels' own view of the global input; None: they read the G x G one.
    self.label_size = encoder.label_size(model_config)
    self._label, self._label_lock = None, threading.Lock()  # its program (_label_program)
    self.trace_count = 0  # how often a program was traced (tests read it)
    self.temperature = bins.TEMPERATURE  # a bins model's default (set_temperature)
    self.programs = buckets.Programs(self._compile, capacity)
    self.rescales = buckets.Programs(  # the global path's rescale, one per bucket
        lambda bucket: buckets.rescale_program(bucket, self.global_size, self.model.input_channels,
                                               self.label_size),
        capacity)

  @classmethod
  def from_checkpoint(cls, path, tile=DEFAULT_TILE, capacity=buckets.DEFAULT_CAPACITY):
    return cls(*checkpoint.load(path), tile=tile, capacity=capacity)

  @classmethod
  def for_command(cls, path=None, tile=DEFAULT_TILE, command='infer.py --image photo.jpg',
                  capacity=buckets.DEFAULT_CAPACITY):
    """What a command colorizes with: `path`, else the bundled model (checkpoint.model_or_bundled),
    with the compilation cache on. Raises checkpoint.CheckpointError."""
    path = checkpoint.model_or_bundled(path, command)
    enable_compilation_cache()
    predictor = cls.from_checkpoint(path, tile=tile, capacity=capacity)
    predictor.path = path  # what it was loaded from (evaluate.py records it)
    return predictor

  @property
  def has_hints(self):
    """Whether the model takes colour hints (jaxcolor/hints.py)."""
    return self.model.hints

  @property
  def has_bins(self):
    """Whether the model predicts a distribution over a*b* bins (a temperature applies)."""
    return self.model.bins > 0

  def set_temperature(self, temperature):
    """The temperature calls without one use; ValueError for a model without bins
    or a value outside (0, MAX_TEMPERATURE]."""
    self.temperature = check_temperature(temperature, self.has_bins)

  def _colorize_traced(self, variables, x_HbxWbxC, l_global_GxGxC, valid, temperature):
    self.trace_count += 1
    ab01, logits = chrominance_padded(self.model, variables, x_HbxWbxC, l_global_GxGxC, valid,
                                      self.tile, temperature)
    ab01 = hints_lib.keep_colours(ab01, x_HbxWbxC)
    return (color.network_to_rgb(x_HbxWbxC[..., :1], ab01), color.denormalize_ab(ab01),
            jax.nn.softmax(logits))

  def _label_program(self):
    """The one compiled program that names the scene from the labels' S x S x 1 view
    (label_size): its probabilities. Apart from the buckets' programs, so that they
    stay as they are (each bucket's holding an encoder of its own cost 0.13 GB more
    peak memory at 4096 x 4096)."""
    with self._label_lock:
      if self._label is None:
        self.trace_count += 1
        scene = lambda variables, l_SxSx1: jax.nn.softmax(
            self.model.apply(variables, l_SxSx1[None], method='scene_logits')[0])
        view = jax.ShapeDtypeStruct((self.label_size, self.label_size, 1), jnp.float32)
        self._label = jax.jit(scene).lower(self.variables, view).compile()
      return self._label

  def _distribution_traced(self, variables, x_HbxWbxC, l_global_GxGxC, valid, row, col):
    """Pixel (row, col)'s distribution, from the local path on its window alone
    (tiling.window): a click on a large photo costs a 136 x 136 tile, not the photo."""
    self.trace_count += 1
    _, fusion = self.model.apply(variables, l_global_GxGxC[None], method='global_features')
    window, start = tiling.window(x_HbxWbxC, row, col)
    output = self.model.apply(variables, window[None], fusion, valid=valid - start,
                              method='local_path')
    return bins.probabilities(output[0, (row - start[0]) // 2, (col - start[1]) // 2])

  def _compile(self, key):
    return self.lower(key).compile()

  def lower(self, key):
    """The program for key = (kind: 'colorize' or 'distribution', bucket height,
    bucket width, whether the image is its own global input), lowered for XLA."""
    kind, height, width, shared = key
    channels, size = self.model.input_channels, self.global_size
    spec = lambda *shape: jax.ShapeDtypeStruct(shape, jnp.float32)
    scalar = lambda dtype: jax.ShapeDtypeStruct((), dtype)
    image, valid = spec(height, width, channels), jax.ShapeDtypeStruct((2,), jnp.int32)
    global_input = None if shared else spec(size, size, channels)
    if kind == 'colorize':  # a new function each time: JAX's caches go with the program
      traced = jax.jit(lambda *args: self._colorize_traced(*args))
      args = (image, global_input, valid, scalar(jnp.float32))
    else:
      traced = jax.jit(lambda *args: self._distribution_traced(*args))
      args = (image, global_input, valid, scalar(jnp.int32), scalar(jnp.int32))
    return traced.lower(self.variables, *args)

  def warm_up(self, sizes=None, stop=None):
    """Compiles the programs of the buckets `sizes` ((height, width) pairs; default
    buckets.common()) ahead of the photos that need them, smallest first, up to
    the capacity; returns how many it compiled. `stop()` True ends it early."""
    compiled = 0
    for height, width in (buckets.common() if sizes is None else sizes)[:self.programs.capacity]:
      if stop is not None and stop():
        break
      bucket = buckets.bucket(height), buckets.bucket(width)
      self.rescales.get(bucket)
      if self.label_size:
        self._label_program()
      if ('colorize', *bucket, False) not in self.programs:
        self.programs.get(('colorize', *bucket, False))
        compiled += 1
    return compiled

  def _network_input(self, l_HxW, hints, style_l):
    """(H x W x C input: L, and the hint planes of a model with hints; the image whose
    G x G rescale the global path reads instead of it, or None: the style image,
    with empty hint planes)."""
    l_HxWx1 = np.asarray(l_HxW, np.float32)[..., None]
    if hints and not self.has_hints:
      raise ValueError('this model takes no colour hints (train one with model.hints=True)')
    if hints and style_l is not None:
      raise ValueError('hints and a style image cannot be combined: the style image '
                       'sets the global colours that hints would change')
    if self.has_hints:
      planes = hints_lib.rasterize(hints or [], *l_HxWx1.shape[:2])
      l_HxWx1 = np.concatenate([l_HxWx1, np.asarray(planes, np.float32)], axis=-1)
    if style_l is None:
      return l_HxWx1, None
    style = np.asarray(style_l, np.float32)[..., None]
    return l_HxWx1, np.pad(style, ((0, 0), (0, 0), (0, l_HxWx1.shape[-1] - 1)))

  def _rescale(self, x_HxWxC, padded=None):
    """(The global path's G x G input, the labels' S x S x 1 view or None: see
    label_size): `x` rescaled (as resize_to_square does), by its bucket's small
    program; `padded`: x already padded to its bucket."""
    padded = buckets.pad(x_HxWxC)[0] if padded is None else padded
    weights = lambda size: tuple(buckets.resize_weights(n, size, p)
                                 for n, p in zip(x_HxWxC.shape[:2], padded.shape[:2]))
    label_weights = weights(self.label_size) if self.label_size else None
    return self.rescales.get(padded.shape[:2])(padded, weights(self.global_size), label_weights)

  def _run(self, kind, l_HxW, hints, style_l, *args):
    """The program of `kind` on the image, padded to its bucket: its outputs; with
    the labels' view of the global input (see label_size) last, or None."""
    x, style = self._network_input(l_HxW, hints, style_l)
    if style is None and kind == 'colorize' and x.shape[:2] == (self.global_size,) * 2:
      program = self.programs.get((kind, *x.shape[:2], True))  # G x G: one trunk run
      label_input = self._rescale(x)[1] if self.label_size else None
      return program(self.variables, x, None, np.asarray(x.shape[:2], np.int32),
                     *args), label_input
    padded, valid = buckets.pad(x)
    global_input, label_input = (self._rescale(x, padded) if style is None
                                 else self._rescale(style))
    program = self.programs.get((kind, *padded.shape[:2], False))
    return program(self.variables, padded, global_input, valid, *args), label_input

  def distribution(self, l_HxW, row, col, style_l=None, hints=None):
    """A bins model's predicted distribution over the a*b* bins (bins.centres())
    at pixel (row, col) of the image: Q probabilities. The row and column are
    traced (one program per bucket)."""
    if not self.has_bins:
      raise ValueError('only a model with a colour-distribution head predicts distributions')
    height, width = l_HxW.shape
    if not (0 <= row < height and 0 <= col < width):
      raise ValueError(f'pixel ({row}, {col}) is outside the {width}x{height} image')
    return np.asarray(self._run('distribution', l_HxW, hints, style_l, np.int32(row),
                                np.int32(col))[0])

  def __call__(self, l_HxW, style_l=None, temperature=None, hints=None):
    """L in [0, 1] (H x W) -> Prediction; `style_l` lends its global features.
    `temperature` (bins models only; default bins.TEMPERATURE): lower is more
    vivid; it is traced, so any value runs the same compiled program. `hints`
    (models with hints only): [hints.Hint], rasterised outside jit, so any number
    of them runs the same compiled program."""
    temperature = np.float32(self.temperature if temperature is None else
                             check_temperature(temperature, self.has_bins))
    (rgb, ab, probabilities), label_view = self._run('colorize', l_HxW, hints, style_l,
                                                     temperature)
    if self.label_size:  # the scene from its own view; the colours are the G x G view's
      probabilities = self._label_program()(self.variables, label_view)
    height, width = np.shape(l_HxW)
    crop = lambda x: np.ascontiguousarray(np.asarray(x)[:height, :width])
    return Prediction(crop(rgb), np.asarray(probabilities), crop(ab))

  def top_k(self, probabilities, k):
    """The k likeliest scenes as (class name, probability), best first, at least
    `label_confidence` likely; [] for a model trained without scene labels."""
    if not self.class_names:
      return []
    order = np.argsort(probabilities)[::-1][:k]
    return [(self.class_names[i], float(probabilities[i])) for i in order
            if probabilities[i] >= self.label_confidence]
