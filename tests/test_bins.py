"""The colour-distribution head: its bins, targets, decoding, and the temperature dial."""
import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest

from jaxcolor import bins
from jaxcolor import buckets
from jaxcolor import color
from jaxcolor.commands import infer
from jaxcolor import inference
from jaxcolor import model as model_lib
from jaxcolor import tiling
from test_inference import photo_l


def test_bins_cover_srgb_on_a_grid_of_ten():
  centres = bins.centres()
  assert centres.shape == (261, 2) and np.all(centres % bins.GRID == 0)
  rgb = np.random.default_rng(0).random((20000, 3))  # any sRGB colour ...
  ab = color.rgb_to_lab(rgb)[:, 1:]
  nearest = centres[np.asarray(bins.nearest(jnp.asarray(ab, jnp.float32)))]
  assert np.abs(ab - nearest).max() <= bins.GRID / 2 + 1e-3  # ... lies in a kept bin


def test_soft_targets_favour_the_nearest_bins():
  ab = jnp.asarray([[0.0, 0.0], [33.0, -47.0]])
  index, weights = bins.soft_targets(ab)
  np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-6)
  assert np.all(np.diff(np.asarray(weights), axis=-1) <= 1e-7)  # nearest first
  np.testing.assert_array_equal(bins.centres()[index[:, 0]], [[0, 0], [30, -50]])
  # The cross-entropy is smallest where the prediction is the target itself.
  target_logits = jnp.log(jnp.zeros((2, bins.num_bins())).at[
      jnp.arange(2)[:, None], index].set(weights) + 1e-9)
  uniform = jnp.zeros_like(target_logits)
  assert bins.cross_entropy(target_logits, ab) < bins.cross_entropy(uniform, ab) - 1


def test_soft_targets_are_the_nearest_of_all_bins():
  """The 4 x 4 block of candidates finds what a search over all Q bins finds, at the
  gamut's edges too (the cube's corners and faces)."""
  rng = np.random.default_rng(0)
  rgb = rng.random((6000, 3))
  rgb[:2000] = np.round(rgb[:2000])
  rgb[2000:4000, rng.integers(0, 3, 2000)] = rng.integers(0, 2, 2000)
  ab = jnp.asarray(color.rgb_to_lab(rgb)[:, 1:], jnp.float32)
  index, weights = bins.soft_targets(ab)
  d2 = np.sum((np.asarray(ab)[:, None] - bins.centres()) ** 2, axis=-1)
  nearest = np.argsort(d2, axis=-1, kind='stable')[:, :bins.NEIGHBOURS]
  def dense(index, weights):
    out = np.zeros((len(ab), bins.num_bins()))
    np.add.at(out, (np.arange(len(ab))[:, None], index), weights)
    return out
  expected = np.exp(-np.take_along_axis(d2, nearest, -1) / (2 * bins.SIGMA ** 2))
  expected /= expected.sum(-1, keepdims=True)
  np.testing.assert_allclose(dense(np.asarray(index), np.asarray(weights)),
                             dense(nearest, expected), atol=1e-5)
  assert not np.isnan(bins.cross_entropy(jnp.zeros((2, bins.num_bins())),
                                         jnp.asarray([[-90.0, 90.0], [0.0, 0.0]])))


def test_decode_goes_from_the_mean_to_the_mode():
  logits = jnp.full((bins.num_bins(),), -10.0)
  red, green = (int(bins.nearest(jnp.asarray(ab))) for ab in ([60.0, 40.0], [-40.0, 40.0]))
  logits = logits.at[red].set(np.log(0.6)).at[green].set(np.log(0.4))
  centres = bins.centres()
  mean = 0.6 * centres[red] + 0.4 * centres[green]
  np.testing.assert_allclose(bins.decode(logits, 1.0), mean, atol=0.5)
  np.testing.assert_allclose(bins.decode(logits, 0.01), centres[red], atol=1e-3)
  chroma = [float(jnp.hypot(*bins.decode(logits, t))) for t in (1.0, 0.38, 0.1)]
  assert chroma[0] < chroma[1] < chroma[2]  # lower temperature, more vivid


@pytest.fixture(scope='module')
def bins_predictor(tiny_config, tiny_variables_bins):
  return inference.Predictor(tiny_variables_bins, tiny_config_bins(tiny_config))


def tiny_config_bins(tiny_config):
  config = tiny_config.model.copy_and_resolve_references()
  config.head = 'bins'
  return config


@pytest.fixture(scope='module')
def tiny_variables_bins(tiny_config):
  model = model_lib.from_config(tiny_config_bins(tiny_config))
  size = tiny_config.model.global_size
  variables = jax.jit(model.init, static_argnames='train')(
      jax.random.key(1), jnp.zeros((1, size, size, 1)), train=False)
  # Bias the output layer towards a colourful bin, so temperature matters.
  bias = variables['params']['colorization']['output']['bias']
  warm = int(bins.nearest(jnp.asarray([30.0, 50.0])))
  variables['params']['colorization']['output']['bias'] = bias.at[warm].set(2.0)
  return variables


def test_temperature_is_a_dial_without_recompiling(bins_predictor):
  l = photo_l('astronaut', 40, 56)
  chroma = []
  for temperature in (1.0, 0.38, 0.1):
    prediction = bins_predictor(l, temperature=temperature)
    chroma.append(float(np.hypot(*np.moveaxis(prediction.ab, -1, 0)).mean()))
  assert chroma[0] < chroma[1] < chroma[2]
  assert bins_predictor.trace_count == 1  # the temperature is traced
  with pytest.raises(ValueError, match='at most 1'):
    bins_predictor(l, temperature=1.5)


def test_tiles_decode_as_the_whole_image(tiny_config, tiny_variables_bins, bins_predictor):
  l = photo_l('astronaut', 150, 96)
  tiled = inference.Predictor(tiny_variables_bins, tiny_config_bins(tiny_config), tile=64)
  a, b = bins_predictor(l, temperature=0.2), tiled(l, temperature=0.2)
  np.testing.assert_allclose(b.rgb, a.rgb, atol=0.1 / 255)  # float32 rounding only


def straightforward(features, kernel, bias, temperature):
  """bins.decode of the output layer's logits for the whole image at once."""
  logits = jax.lax.conv_general_dilated(features, kernel, (1, 1), ((1, 1), (1, 1)),
                                        dimension_numbers=('NHWC', 'HWIO', 'NHWC')) + bias
  return bins.decode(logits, temperature)


def test_the_banded_decode_is_the_decode_of_the_logits():
  rng = np.random.default_rng(0)
  features = jnp.asarray(rng.standard_normal((2, 37, 53, 8)), jnp.float32)
  kernel = jnp.asarray(rng.standard_normal((3, 3, 8, bins.num_bins())) * 0.3, jnp.float32)
  bias = jnp.asarray(rng.standard_normal(bins.num_bins()) * 0.1, jnp.float32)
  for temperature in (1.0, 0.38, 0.1):
    # float32 rounding of the logits (a few units), divided by the temperature, times
    # centres of up to ~100 a*b* units.
    np.testing.assert_allclose(bins.decode_features(features, kernel, bias, temperature),
                               straightforward(features, kernel, bias, temperature),
                               atol=5e-4 / temperature)


def test_a_predictor_decodes_as_the_logits_would(tiny_config, tiny_variables_bins,
                                                 bins_predictor, monkeypatch):
  l = photo_l('astronaut', 150, 96)
  fused = [bins_predictor(l, temperature=t) for t in (0.38, 0.1)]
  monkeypatch.setattr(bins, 'decode_features', straightforward)
  plain = inference.Predictor(tiny_variables_bins, tiny_config_bins(tiny_config))
  for a, temperature in zip(fused, (0.38, 0.1)):
    b = plain(l, temperature=temperature)
    np.testing.assert_allclose(a.ab, b.ab, atol=1e-3)  # a*b* units: float32 rounding only
    np.testing.assert_allclose(a.rgb, b.rgb, atol=0.1 / 255)


def test_a_model_without_bins_refuses_a_temperature(tiny_config, tiny_variables, tiny_checkpoint,
                                                    tmp_path, capsys):
  predictor = inference.Predictor(tiny_variables, tiny_config.model)
  with pytest.raises(ValueError, match='colour-distribution head'):
    predictor(photo_l('astronaut', 16, 16), temperature=0.5)
  photo = tmp_path / 'photo.png'
  Image.fromarray(np.zeros((16, 16), np.uint8)).save(photo)
  assert infer.main(['--image', str(photo), '--checkpoint', str(tiny_checkpoint),
                     '--temperature', '0.5', '--output', str(tmp_path / 'out')]) == 2
  assert 'colour-distribution head' in capsys.readouterr().err
  assert not (tmp_path / 'out').exists()


def test_one_pixel_s_distribution_is_what_the_colours_decode(bins_predictor):
  l = photo_l('astronaut', 40, 56)
  p = bins_predictor.distribution(l, 17, 30)
  assert p.shape == (bins.num_bins(),) and abs(p.sum() - 1) < 1e-5
  # At T = 1 the colour is the distribution's mean (bilinear upsampling aside:
  # (17, 30) lies between half-resolution pixels, so compare loosely).
  mean = p @ bins.centres()
  ab = bins_predictor(l, temperature=1.0).ab[17, 30]
  np.testing.assert_allclose(ab, mean, atol=3.0)
  best = bins.likeliest(p, 3)
  assert len(best) == 3 and best[0][2] >= best[1][2] >= best[2][2]
  with pytest.raises(ValueError, match='outside'):
    bins_predictor.distribution(l, 40, 0)


def test_one_pixel_s_distribution_needs_only_its_window(bins_predictor, monkeypatch):
  """distribution() runs the local path on the pixel's window (tiling.window): the
  same probabilities as the whole image's local path, at corners, edges and inside,
  and on a side shorter than a window."""
  windows = []
  def window(*args, **kwargs):
    windows.append(tiling_window(*args, **kwargs)[0].shape[:2])
    return tiling_window(*args, **kwargs)
  tiling_window = tiling.window
  monkeypatch.setattr(tiling, 'window', window)
  predictor = bins_predictor
  for height, width, points in [(300, 260, [(0, 0), (299, 259), (150, 7), (75, 200),
                                            (203, 131)]),
                                (60, 300, [(0, 0), (59, 299), (30, 150), (17, 70)])]:
    l = photo_l('astronaut', height, width)
    padded, valid = buckets.pad(l[..., None])
    global_input = predictor._rescale(l[..., None], padded)[0]
    _, fusion = predictor.model.apply(predictor.variables, global_input[None],
                                      method='global_features')
    whole = predictor.model.apply(predictor.variables, padded[None], fusion, valid=valid,
                                  method='local_path')[0]
    for row, col in points:
      np.testing.assert_allclose(predictor.distribution(l, row, col),
                                 bins.probabilities(whole[row // 2, col // 2]), atol=2e-6)
  # Traced once per bucket, each time on a window, not the photo: 136 px, or the
  # bucket's side where that is shorter (64 for 60 rows).
  assert windows == [(136, 136), (64, 136)], windows
