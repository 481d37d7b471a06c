"""Colour-rarity loss weights (an option; the paper's loss is plain MSE)."""
import numpy as np

from jaxcolor import color
from jaxcolor import rarity
from jaxcolor import train_step as step_lib


def _network_ab(a, b, shape=(1, 2, 2)):
  """An array of one a*b* colour, network-scaled."""
  return np.broadcast_to((np.array([a, b]) / color.AB_MAX + 1) / 2, (*shape, 2)).astype(np.float32)


def test_histogram_counts_each_pixel_in_its_bin():
  counts = rarity.histogram([_network_ab(0, 0), _network_ab(-105, 55, (1, 1, 3)),
                             _network_ab(500, -500, (1, 1, 1))])
  assert counts.sum() == 8
  assert counts[11, 11] == 4          # a*, b* in [0, 10)
  assert counts[0, 16] == 3           # a* in [-110, -100), b* in [50, 60)
  assert counts[21, 0] == 1           # beyond the range: the edge bins


def test_rare_colours_weigh_more_and_the_mean_weight_is_one():
  counts = np.ones((rarity.BINS, rarity.BINS))
  counts[11, 11] = 1000  # grey-ish is common
  w = rarity.weights(counts, power=1.0)
  assert w[11, 11] < 0.2 < 1.5 < w[0, 0]
  np.testing.assert_allclose(np.sum(w * counts) / counts.sum(), 1.0, rtol=1e-5)
  half = rarity.weights(counts, power=0.5)
  assert w[11, 11] < half[11, 11] < 1 < half[0, 0] < w[0, 0]  # the middle of the dial
  np.testing.assert_allclose(rarity.weights(counts, power=0.0), 1.0, rtol=1e-6)


def test_pixel_weights_look_up_the_true_colour():
  table = np.arange(rarity.BINS ** 2, dtype=np.float32).reshape(rarity.BINS, rarity.BINS)
  ab = np.concatenate([_network_ab(0, 0, (1, 1, 1)), _network_ab(-105, 55, (1, 1, 1))], axis=2)
  np.testing.assert_array_equal(rarity.pixel_weights(ab, table), [[[table[11, 11], table[0, 16]]]])


def test_weighted_loss_scales_the_squared_error():
  rng = np.random.default_rng(0)
  batch = {'ab': rng.random((2, 4, 4, 2), np.float32), 'label': np.full(2, -1, np.int32),
           'label_ids': np.zeros((2, 1), np.int32), 'label_probs': np.zeros((2, 1), np.float32)}
  predicted, logits = rng.random((2, 2, 2, 2), np.float32), np.zeros((2, 3), np.float32)
  plain = step_lib._loss_sums(predicted, logits, batch, np.ones(2))
  table = np.full((rarity.BINS, rarity.BINS), 2.0, np.float32)
  weighted = step_lib._loss_sums(predicted, logits, batch, np.ones(2), table)
  np.testing.assert_allclose(float(weighted['squared']), 2 * float(plain['squared']), rtol=1e-6)
  assert float(weighted['pixels']) == float(plain['pixels'])
