"""Colour conversion against scikit-image on real photographs."""
import jax.numpy as jnp
import numpy as np
import pytest
from skimage import color as skcolor

from conftest import PHOTOS, photo
from jaxcolor import color


@pytest.mark.parametrize('name', PHOTOS)
def test_rgb_to_lab_matches_skimage(name):
  rgb = photo(name) / 255.0
  expected = skcolor.rgb2lab(rgb)
  ours = np.asarray(color.rgb_to_lab(jnp.asarray(rgb, jnp.float32)))
  np.testing.assert_allclose(ours, expected, atol=1e-4)
  np.testing.assert_allclose(color.rgb_to_lab(rgb), expected, atol=1e-10)  # numpy path


@pytest.mark.parametrize('name', PHOTOS)
def test_lab_to_rgb_matches_skimage(name):
  lab = skcolor.rgb2lab(photo(name) / 255.0)
  expected = skcolor.lab2rgb(lab)
  ours = np.asarray(color.lab_to_rgb(jnp.asarray(lab, jnp.float32)))
  np.testing.assert_allclose(ours, expected, atol=1e-4)
  np.testing.assert_allclose(ours, photo(name) / 255.0, atol=1e-4)


def test_out_of_gamut_lab_is_clipped_like_skimage():
  # Extreme a*b* at every lightness: far outside sRGB, some with negative Z.
  l, a, b = np.meshgrid(np.linspace(0, 100, 11), np.linspace(-128, 127, 9),
                        np.linspace(-128, 127, 9), indexing='ij')
  lab = np.stack([l, a, b], axis=-1).reshape(-1, 1, 3)
  ours = np.asarray(color.lab_to_rgb(jnp.asarray(lab, jnp.float32)))
  with pytest.warns(UserWarning, match='negative Z'):
    expected = skcolor.lab2rgb(lab)
  np.testing.assert_allclose(ours, expected, atol=1e-4)


def test_network_scaling_round_trip():
  rgb = photo('coffee')[::8, ::8] / 255.0
  l01, ab01 = color.rgb_to_network(jnp.asarray(rgb, jnp.float32))
  lab = skcolor.rgb2lab(rgb)
  np.testing.assert_allclose(l01[..., 0], lab[..., 0] / 100, atol=1e-6)  # L* 0..100
  np.testing.assert_allclose(ab01, (lab[..., 1:] + 128) / 256, atol=1e-6)  # a*b* -128..128
  np.testing.assert_allclose(color.network_to_rgb(l01, ab01), rgb, atol=1e-4)


def test_grey_is_the_middle_of_the_ab_range():
  l01, ab01 = color.rgb_to_network(np.full((2, 2, 3), 0.5))
  np.testing.assert_allclose(ab01, 0.5, atol=2e-5)  # CIE rounding
  np.testing.assert_allclose(l01, skcolor.rgb2lab(np.full((1, 1, 3), 0.5))[0, 0, 0] / 100)


def test_grey_of_a_lightness_is_neutral_with_that_lightness():
  l01 = np.linspace(0, 1, 101)
  grey = color.grey_rgb(l01)
  assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
  np.testing.assert_allclose(skcolor.rgb2lab(grey[None])[0, :, 0] / 100, l01, atol=1e-6)


def test_strength_scales_the_chrominance_and_keeps_the_lightness():
  lab = skcolor.rgb2lab(photo('coffee')[::8, ::8] / 255.0).astype(np.float32)
  l01, ab = lab[..., 0] / 100, lab[..., 1:]
  np.testing.assert_allclose(color.with_strength(l01, ab, 1.0), color.lab_to_rgb(lab), atol=1e-6)
  # Strength 0 is grey up to the CIE constants' rounding (a*b* = 0 is not exactly R = G = B).
  np.testing.assert_allclose(color.with_strength(l01, ab, 0.0), color.grey_rgb(l01), atol=1e-4)
  stronger_rgb = color.with_strength(l01, ab, 1.5)
  stronger = skcolor.rgb2lab(stronger_rgb.astype(np.float64))
  in_gamut = ((stronger_rgb > 1e-4) & (stronger_rgb < 1 - 1e-4)).all(axis=-1)
  assert in_gamut.mean() > 0.3  # the coffee photo: 37% stays inside sRGB at 1.5
  np.testing.assert_allclose(stronger[in_gamut], np.concatenate(
      [lab[..., :1], 1.5 * ab], axis=-1)[in_gamut], atol=0.05)
