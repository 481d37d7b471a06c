"""Any-resolution inference: full-size output, original L kept, one trace per size bucket."""
import numpy as np
import pytest

from conftest import photo
from jaxcolor import color
from jaxcolor import inference


@pytest.fixture(scope='module')
def predictor(tiny_config, tiny_variables):
  return inference.Predictor(tiny_variables, tiny_config.model, ['a', 'b', 'c', 'd'])


def photo_l(name, height, width):
  rgb = photo(name)[:height, :width] / 255.0
  return color.rgb_to_network(rgb)[0][..., 0].astype(np.float32)


@pytest.mark.parametrize('height,width', [(32, 32), (37, 53), (90, 31), (1, 1), (7, 5)])
def test_output_is_full_size_colour_with_the_original_lightness(predictor, height, width):
  l = photo_l('chelsea', height, width)
  prediction = predictor(l)
  assert prediction.rgb.shape == (height, width, 3)
  # Wherever the colour is inside the sRGB gamut (no channel clipped), the
  # output's L* is exactly the full-resolution input's.
  rgb = prediction.rgb.astype(np.float64)
  in_gamut = ((rgb > 1e-4) & (rgb < 1 - 1e-4)).all(axis=-1)
  assert in_gamut.any()
  lab = color.rgb_to_lab(rgb)
  np.testing.assert_allclose(lab[..., 0][in_gamut] / 100, l[in_gamut], atol=2e-4)
  # The scene comes from the global path's G x G rescale of the image alone.
  global_l = inference.resize_to_square(l[..., None], predictor.global_size)[..., 0]
  np.testing.assert_allclose(prediction.probabilities, predictor(global_l).probabilities,
                             atol=1e-5)


def test_chrominance_is_the_colour_of_the_output(predictor):
  l = photo_l('coffee', 37, 53)
  prediction = predictor(l)
  assert prediction.ab.shape == (37, 53, 2)
  np.testing.assert_allclose(color.with_strength(l, prediction.ab, 1.0), prediction.rgb,
                             atol=1e-5)
  assert prediction.rgb_at(l, 1.0) is prediction.rgb
  np.testing.assert_allclose(prediction.rgb_at(l, 0.0), color.grey_rgb(l), atol=1e-4)


def test_output_has_colour(predictor):
  prediction = predictor(photo_l('chelsea', 64, 96))
  lab = color.rgb_to_lab(prediction.rgb.astype(np.float64))
  assert np.abs(lab[..., 1:]).mean() > 0.5  # not a grey image


def test_traces_once_per_size_bucket(tiny_config, tiny_variables):
  predictor = inference.Predictor(tiny_variables, tiny_config.model)
  for height, width in [(40, 48), (41, 48), (100, 48), (40, 48), (41, 48), (97, 40)]:
    predictor(photo_l('astronaut', height, width))
  assert predictor.trace_count == 2  # 64 x 64 and 128 x 64


def test_chrominance_is_upsampled_from_half_resolution(predictor):
  """A 2x2 block of output pixels is not all one colour: the bilinear upsampling
  interpolates between half-resolution predictions."""
  prediction = predictor(photo_l('astronaut', 64, 64))
  ab = color.rgb_to_lab(prediction.rgb.astype(np.float64))[..., 1:]
  blocks = ab.reshape(32, 2, 32, 2, 2)
  assert np.abs(blocks[:, 0, :, 0] - blocks[:, 1, :, 1]).max() > 1e-3


def test_style_image_lends_its_global_features(predictor):
  l, style = photo_l('astronaut', 48, 40), photo_l('rocket', 300, 200)
  plain = predictor(l)
  same = predictor(l, style_l=l)
  styled = predictor(l, style_l=style)
  np.testing.assert_allclose(same.rgb, plain.rgb, atol=1e-6)
  # The scene is the style image's; the colours move by what the global path
  # changes (measured: a mean of 0.13 per sRGB channel); the lightness stays.
  style_global = inference.resize_to_square(style[..., None], predictor.global_size)[..., 0]
  np.testing.assert_allclose(styled.probabilities, predictor(style_global).probabilities,
                             atol=1e-5)
  assert np.abs(styled.rgb - plain.rgb).mean() > 0.03
  lightness = color.rgb_to_lab(styled.rgb.astype(np.float64))[..., 0] / 100
  in_gamut = ((styled.rgb > 1e-4) & (styled.rgb < 1 - 1e-4)).all(axis=-1)
  np.testing.assert_allclose(lightness[in_gamut], l[in_gamut], atol=2e-4)


def test_top_k_names_classes_best_first(predictor, tiny_config, tiny_variables):
  probabilities = np.array([0.1, 0.6, 0.05, 0.25])
  assert predictor.top_k(probabilities, 2) == [('b', 0.6), ('d', 0.25)]
  unlabelled = inference.Predictor(tiny_variables, tiny_config.model, class_names=None)
  assert unlabelled.top_k(probabilities, 2) == []
