"""Loss weights from how rare a pixel's true colour is (off by default).

The paper's loss is plain MSE on a*b*, which pulls every uncertain pixel to the
mean colour: brown-grey. Zhang et al. 2016 rebalance their colour classes by
rarity; this applies the same weights to the regression. A smoothed histogram
of true a*b* over training photos gives p; the weight of a colour is
((1 - mix) * p + mix / bins)^-power, capped at the 99th percentile of the
pixels' weights and normalised to mean 1 over the photos' pixels. power 0 is
plain MSE; power 1 is Zhang's rebalancing on this grid (they count only the
313 in-gamut bins of 484); values between are the middle of the dial.
"""
import jax.numpy as jnp
import numpy as np

from jaxcolor import color

BIN = 10.0        # a*b* units per bin
AB_LIMIT = 110.0  # bins cover [-AB_LIMIT, AB_LIMIT) on both axes; beyond, the edge bins
BINS = int(2 * AB_LIMIT / BIN)


def _bin_index(ab_network, xp):
  """Network-scaled a*b* in [0, 1] -> bin index per channel, in [0, BINS)."""
  ab = (ab_network - 0.5) * 2 * color.AB_MAX
  return xp.clip(xp.floor((ab + AB_LIMIT) / BIN), 0, BINS - 1).astype(xp.int32)


def histogram(ab_batches):
  """BINS x BINS counts of the a*b* pixels of network-scaled BxHxWx2 arrays (give
  them at the resolution the loss compares: the half-resolution target)."""
  counts = np.zeros((BINS, BINS))
  for ab in ab_batches:
    index = _bin_index(np.asarray(ab), np).reshape(-1, 2)
    np.add.at(counts, (index[:, 0], index[:, 1]), 1)
  return counts


def _smooth(p, sigma=0.5):
  """Gaussian blur (sigma in bins) of a 2-D table, edges clamped."""
  t = np.arange(-2, 3)
  kernel = np.exp(-t ** 2 / (2 * sigma ** 2))
  kernel /= kernel.sum()
  for axis in (0, 1):
    padded = np.pad(p, [(2, 2) if a == axis else (0, 0) for a in (0, 1)], mode='edge')
    p = sum(k * np.take(padded, np.arange(i, i + p.shape[axis]), axis=axis)
            for i, k in enumerate(kernel))
  return p


def weights(counts, mix=0.5, power=1.0):
  """BINS x BINS loss weights from a histogram (see the module docstring)."""
  share = counts / counts.sum()
  w = ((1 - mix) * _smooth(share) + mix / share.size) ** -power
  # The cap is over pixels, not bins: most bins hold no pixel and the largest weight.
  order = np.argsort(w, axis=None)
  cumulative = np.cumsum(share.ravel()[order])
  w = np.minimum(w, w.ravel()[order][np.searchsorted(cumulative, 0.99)])
  return (w / np.sum(w * share)).astype(np.float32)


def pixel_weights(ab_BxHxWx2, table):
  """The weight of each pixel's true colour: B x H x W (jax)."""
  index = _bin_index(ab_BxHxWx2, jnp)
  return jnp.asarray(table)[index[..., 0], index[..., 1]]
