"""Colorize an image of any size with a trained Colorizer.

The local path runs at the image's own size (edge-padded to a multiple of 8),
the global path on a G x G rescale (of the image, or of a style image), and the
H/2 chrominance is upsampled bilinearly and joined with the ORIGINAL
full-resolution L. The jitted function retraces once per input resolution.
"""
import dataclasses
import functools
import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from jaxcolor import checkpoint
from jaxcolor import color
from jaxcolor import model as model_lib


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


def resize_to_square(l_HxWx1, size):
  """Bilinear (antialiased when shrinking) rescale to size x size x 1."""
  return jax.image.resize(l_HxWx1, (size, size, 1), 'linear', antialias=True)


def colorize_l(model, variables, l_HxWx1, l_global_GxGx1=None):
  """L in [0, 1] at any H x W -> (sRGB H x W x 3 in [0, 1], logits).

  `l_global_GxGx1` is the global path's input; None means the image itself,
  which for a G x G image shares one run of the low-level trunk.
  """
  height, width, _ = l_HxWx1.shape
  pad_h, pad_w = -height % model_lib.STRIDE, -width % model_lib.STRIDE
  local = jnp.pad(l_HxWx1, ((0, pad_h), (0, pad_w), (0, 0)), mode='edge')
  ab_half, logits = model.apply(
      variables, local[None],
      None if l_global_GxGx1 is None else l_global_GxGx1[None], train=False)
  ab = jax.image.resize(ab_half[0], (*local.shape[:2], 2), 'linear')
  rgb = color.network_to_rgb(l_HxWx1, ab[:height, :width])
  return rgb, logits[0]


class Predictor:
  """A loaded model: colorizes images, names scenes, transfers style."""

  def __init__(self, variables, model_config, class_names=None):
    self.model = model_lib.from_config(model_config)
    self.variables = variables
    self.global_size = model_config.global_size
    self.class_names = list(class_names or [])  # empty: trained without scene labels
    self.trace_count = 0  # how often the colorize function was traced (tests read it)
    self._colorize = jax.jit(self._colorize_traced)
    self._to_global = jax.jit(functools.partial(resize_to_square, size=self.global_size))

  @classmethod
  def from_checkpoint(cls, path):
    return cls(*checkpoint.load(path))

  def _colorize_traced(self, variables, l_HxWx1, l_global_GxGx1):
    self.trace_count += 1
    rgb, logits = colorize_l(self.model, variables, l_HxWx1, l_global_GxGx1)
    return rgb, jax.nn.softmax(logits)

  def __call__(self, l_HxW, style_l=None):
    """L in [0, 1] (H x W) -> Prediction; `style_l` lends its global features."""
    l_HxWx1 = jnp.asarray(l_HxW, jnp.float32)[..., None]
    if style_l is None and l_HxW.shape == (self.global_size,) * 2:
      l_global = None  # the image is the global input: one trunk run serves both
    else:
      source = l_HxWx1 if style_l is None else jnp.asarray(style_l, jnp.float32)[..., None]
      l_global = self._to_global(source)
    rgb, probabilities = self._colorize(self.variables, l_HxWx1, l_global)
    return Prediction(np.asarray(rgb), np.asarray(probabilities))

  def top_k(self, probabilities, k):
    """The k likeliest scenes as (class name, probability), best first; [] for a
    model trained without scene labels."""
    if not self.class_names:
      return []
    order = np.argsort(probabilities)[::-1][:k]
    return [(self.class_names[i], float(probabilities[i])) for i in order]
