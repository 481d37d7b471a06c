"""Quantised a*b* colours (Zhang, Isola and Efros 2016): the bins, soft targets,
decoding a distribution into one colour.

A pixel's colour becomes a distribution over Q bins of the a*b* plane: squares of
GRID units whose centres are multiples of GRID, kept when some sRGB colour falls in
them. Every one of the 16.7 million sRGB colours falls in one of 261 such bins at
GRID = 10 (Zhang et al. kept 313, from the colours of ImageNet's photos, whose
gamut is wider than sRGB). Training targets spread each true colour over its
nearest bins (`soft_targets`); inference turns a predicted distribution back into
one colour by the annealed mean (`decode`), whose temperature is a dial from the
mean (T = 1: safe, pale) to the mode (T -> 0: vivid, patchy).
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxcolor import color

GRID = 10.0
NEIGHBOURS = 5   # soft targets: the true colour's nearest bins ...
SIGMA = 5.0      # ... weighted by a Gaussian of their distance (a*b* units)
TEMPERATURE = 0.38  # Zhang et al.'s default for decoding
MAX_TEMPERATURE = 1.0  # the distribution's mean; above it colours only get paler
MIN_TEMPERATURE = 1e-3  # decode's floor: a lower T decodes as this one


@functools.cache
def centres():
  """Q x 2 float32 a*b* centres of the bins that hold sRGB colours, in a fixed order."""
  levels = np.linspace(0.0, 1.0, 64)  # every 4th 8-bit level reaches every bin the 256 do
  rgb = np.stack(np.meshgrid(levels, levels, levels, indexing='ij'), -1).reshape(-1, 3)
  ab = color.rgb_to_lab(rgb)[:, 1:]
  cells = np.unique(np.round(ab / GRID).astype(np.int32), axis=0)
  return (cells * GRID).astype(np.float32)


def num_bins():
  return len(centres())


@functools.cache
def _cell_table():
  """(lowest cell (i, j), table of bin indices by cell with -1 where no bin), the
  table padded by 2 cells on every side so that any 4 x 4 block around a bin fits."""
  cells = np.round(centres() / GRID).astype(np.int32)
  low = cells.min(0) - 2
  table = np.full(tuple(cells.max(0) - low + 3), -1, np.int32)
  table[tuple((cells - low).T)] = np.arange(len(cells))
  return low, table


def soft_targets(ab_Nx2):
  """True a*b* (N x 2, or any ... x 2) -> (bin indices ... x K, weights ... x K
  summing to 1): the NEIGHBOURS nearest bins, Gaussian-weighted by distance.

  The candidates are the 4 x 4 bins around the colour, not all Q: on a grid the 5
  nearest points lie within 1.6 GRID, every point outside the block is 2 GRID away
  or more, and this is 16x less work (a top-k over Q per pixel was most of a
  training step's time on CPU). Where the block holds fewer than K bins (the gamut's
  edge), the missing ones get weight 0."""
  low, table = _cell_table()
  shape = ab_Nx2.shape[:-1]
  ab = jnp.clip(ab_Nx2.reshape(-1, 2), -GRID * 12, GRID * 12)  # stay inside the table
  base = jnp.floor(ab / GRID).astype(jnp.int32) - 1 - jnp.asarray(low)  # block's corner
  offsets = jnp.asarray(np.stack(np.meshgrid(np.arange(4), np.arange(4), indexing='ij'),
                                 -1).reshape(16, 2))
  cell = jnp.clip(base[:, None, :] + offsets, 0, jnp.asarray(table.shape) - 1)  # N x 16 x 2
  candidate = jnp.asarray(table)[cell[..., 0], cell[..., 1]]  # N x 16 bin or -1
  centre = (cell + jnp.asarray(low)).astype(jnp.float32) * GRID
  d2 = jnp.sum((ab[:, None, :] - centre) ** 2, axis=-1)
  far = 1e6  # a cell with no bin: weight exp(-far / 2 sigma^2) = 0, and never NaN
  neg_d2, k = jax.lax.top_k(-d2 - jnp.where(candidate >= 0, 0.0, far), NEIGHBOURS)
  index = jnp.maximum(jnp.take_along_axis(candidate, k, axis=-1), 0)
  weights = jax.nn.softmax(neg_d2 / (2 * SIGMA ** 2), axis=-1)
  return (index.reshape(*shape, NEIGHBOURS), weights.reshape(*shape, NEIGHBOURS))


def cross_entropy(logits_xQ, ab_x2, mean=True):
  """-sum_q target_q log p_q per pixel (...), or its mean; the targets are
  soft_targets(ab), ab the true a*b* (... x 2)."""
  log_p = jax.nn.log_softmax(logits_xQ.astype(jnp.float32), axis=-1)
  index, weights = soft_targets(ab_x2.astype(jnp.float32))
  per_pixel = -jnp.sum(weights * jnp.take_along_axis(log_p, index, axis=-1), axis=-1)
  return jnp.mean(per_pixel) if mean else per_pixel


def nearest(ab_x2):
  """The index of the nearest bin of each a*b* (... x 2) -> (...)."""
  c_Qx2 = jnp.asarray(centres())
  return jnp.argmin(jnp.sum((ab_x2[..., None, :] - c_Qx2) ** 2, axis=-1), axis=-1)


def decode(logits_xQ, temperature):
  """Annealed mean: a*b* (... x 2) = sum_q softmax(log p / T)_q centre_q.
  `temperature` may be traced (no recompilation per value); T = 1 is the mean of
  the distribution, T -> 0 its mode."""
  t = jnp.maximum(jnp.asarray(temperature, jnp.float32), MIN_TEMPERATURE)
  p = jax.nn.softmax(logits_xQ.astype(jnp.float32) / t, axis=-1)
  return p @ jnp.asarray(centres())


def decode_features(features_BxHxWxC, kernel_3x3xCxQ, bias_Q, temperature, band=16):
  """decode(logits) for the logits of a 3x3 'SAME' convolution (zero padding 1, as
  the output layer's nn.Conv) of the features: B x H x W x 2 a*b*, computed band by
  band of `band` rows (the last one padded), so that no more than one band's
  logits exist at once. Each band's logits are im2col patches [pixels, 9C] @ kernel
  [9C, Q]: on CPU several times faster than the convolution over the whole image,
  the same up to float32 rounding."""
  batch, height, width, channels = features_BxHxWxC.shape
  band = min(band, height)
  count = -(-height // band)
  x = jnp.pad(features_BxHxWxC.astype(jnp.float32),
              ((0, 0), (1, 1 + count * band - height), (1, 1), (0, 0)))
  kernel = jnp.asarray(kernel_3x3xCxQ, jnp.float32).reshape(9 * channels, -1)
  bias = jnp.asarray(bias_Q, jnp.float32)

  def one(i):
    rows = jax.lax.dynamic_slice_in_dim(x, i * band, band + 2, axis=1)
    patches = jnp.concatenate([rows[:, dy:dy + band, dx:dx + width]
                               for dy in range(3) for dx in range(3)], -1)
    logits = patches.reshape(-1, 9 * channels) @ kernel + bias
    return decode(logits, temperature).reshape(batch, band, width, 2)

  out = jax.lax.map(one, jnp.arange(count))  # count x B x band x W x 2
  return jnp.moveaxis(out, 0, 1).reshape(batch, count * band, width, 2)[:, :height]


def likeliest(probabilities_Q, k=3):
  """The k likeliest colours of one pixel's distribution, as [(a*, b*, probability)],
  best first: what a colour-hint tool can offer to pick from."""
  order = np.argsort(probabilities_Q)[::-1][:k]
  return [(*map(float, centres()[i]), float(probabilities_Q[i])) for i in order]


def probabilities(logits_xQ):
  """The predicted distribution over the bins (T = 1)."""
  return jax.nn.softmax(logits_xQ.astype(jnp.float32), axis=-1)


def to_chrominance(output, temperature):
  """The network's colour output (B x H/2 x W/2 x 2 in [0, 1], or logits over a*b*
  bins) as a*b* scaled to [0, 1]; bins are decoded by the annealed mean at
  `temperature` (traced: no compile per value). Inference passes the temperature to
  the network instead, which then decodes band by band (model.Colorization)."""
  if output.shape[-1] == 2:
    return output
  return color.normalize_ab(decode(output, temperature))
