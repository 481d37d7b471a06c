"""Colour-rarity loss weights (an option; the paper's loss is plain MSE)."""
import numpy as np
import pytest

from jaxcolor import color
from jaxcolor.training import rarity
from jaxcolor.training import train_step as step_lib


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


def test_the_rarest_pixels_are_capped_at_the_99th_percentile_of_pixels():
  counts = np.zeros((rarity.BINS, rarity.BINS))
  counts[11, 11], counts[5:9, 5:10], counts[20, 2] = 1000, 10, 1  # one pixel in 1,201 is rare
  w = rarity.weights(counts, power=1.0)
  pixel_weights = np.repeat(w.ravel(), counts.ravel().astype(int))
  assert w[20, 2] == w.max() == pytest.approx(np.percentile(pixel_weights, 99, method='higher'))
  assert w[20, 2] <= w[5:9, 5:10].max() + 1e-6  # no more than the moderately rare colours


def test_pixel_weights_look_up_the_true_colour():
  table = np.arange(rarity.BINS ** 2, dtype=np.float32).reshape(rarity.BINS, rarity.BINS)
  ab = np.concatenate([_network_ab(0, 0, (1, 1, 1)), _network_ab(-105, 55, (1, 1, 1))], axis=2)
  np.testing.assert_array_equal(rarity.pixel_weights(ab, table), [[[table[11, 11], table[0, 16]]]])


def test_weighted_loss_weighs_each_pixel_by_its_true_colour():
  rng = np.random.default_rng(0)
  ab = np.concatenate([_network_ab(0, 0, (1, 2, 2)), _network_ab(-105, 55, (1, 2, 2))], axis=2)
  batch = {'ab': ab, 'label': np.full(1, -1, np.int32),
           'label_ids': np.zeros((1, 1), np.int32), 'label_probs': np.zeros((1, 1), np.float32)}
  predicted, logits = rng.random((1, 1, 2, 2), np.float32), np.zeros((1, 3), np.float32)
  table = np.ones((rarity.BINS, rarity.BINS), np.float32)
  table[11, 11], table[0, 16] = 0.5, 3.0  # grey-ish left half, green-blue-ish right half
  weighted = step_lib._loss_sums(predicted, logits, batch, np.ones(1), table)
  target = step_lib.half_resolution(ab)
  by_hand = (0.5 * ((predicted[:, :, 0] - target[:, :, 0]) ** 2).sum() +
             3.0 * ((predicted[:, :, 1] - target[:, :, 1]) ** 2).sum())
  np.testing.assert_allclose(float(weighted['squared']), by_hand, rtol=1e-6)
  plain = step_lib._loss_sums(predicted, logits, batch, np.ones(1))
  assert float(weighted['pixels']) == float(plain['pixels'])


def test_rebalancing_weighs_each_pixel_s_bins_cross_entropy_by_its_true_colour():
  from jaxcolor import bins
  rng = np.random.default_rng(0)
  ab = np.concatenate([_network_ab(0, 0, (1, 2, 2)), _network_ab(-105, 55, (1, 2, 2))], axis=2)
  batch = {'ab': ab, 'label': np.full(1, -1, np.int32),
           'label_ids': np.zeros((1, 1), np.int32), 'label_probs': np.zeros((1, 1), np.float32)}
  output = rng.standard_normal((1, 1, 2, bins.num_bins())).astype(np.float32)
  logits = np.zeros((1, 3), np.float32)
  table = np.ones((rarity.BINS, rarity.BINS), np.float32)
  table[11, 11], table[0, 16] = 0.5, 3.0
  per_pixel = np.asarray(bins.cross_entropy(
      output, color.denormalize_ab(step_lib.half_resolution(ab)), mean=False))
  weighted = step_lib._loss_sums(output, logits, batch, np.ones(1), table)
  np.testing.assert_allclose(float(weighted['colour']),
                             0.5 * per_pixel[:, :, 0].sum() + 3.0 * per_pixel[:, :, 1].sum(),
                             rtol=1e-5)
  plain = step_lib._loss_sums(output, logits, batch, np.ones(1))
  np.testing.assert_allclose(float(plain['colour']), per_pixel.sum(), rtol=1e-5)
