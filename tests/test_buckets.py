"""Size buckets: a bounded number of compiled programs, and the same result as at
the photo's own size (up to float32 rounding)."""
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcolor import buckets
from jaxcolor import images
from jaxcolor import inference
from test_fast_paths import float64_reference
from test_fast_paths import photo_l


def test_a_bucket_holds_the_side_and_the_ladder_is_bounded():
  assert [buckets.bucket(n) for n in (1, 64, 65, 224, 225, 1024, 1025, 2048, 2049, 4000)] == [
      64, 64, 96, 224, 256, 1024, 1280, 2048, 2560, 4096]
  for n in range(1, 3000, 7):
    side = buckets.bucket(n)
    assert side >= n and side % 8 == 0 and side <= max(1.5 * n, 64)
  # Every side up to 5000 px lands in one of 25 sizes: at most 625 programs ever exist.
  assert len({buckets.bucket(n) for n in range(1, 5001)}) == 25


def test_the_global_rescale_is_jax_s_with_a_program_per_bucket(tiny_config, tiny_variables):
  predictor = inference.Predictor(tiny_variables, tiny_config.model)
  size = predictor.global_size
  rng = np.random.default_rng(0)
  for height, width in [(1, 1), (333, 517), (330, 500), (64, 100), (size, size), (1500, 900)]:
    x = rng.random((height, width, 1), dtype=np.float32)
    want = np.asarray(inference.resize_to_square(jnp.asarray(x), size))
    global_input, label_input = predictor._rescale(x)
    np.testing.assert_allclose(global_input, want, rtol=0, atol=1e-6)
    assert label_input is None  # the labels read the global input (no encoder)
  assert len(predictor.rescales) == 5  # 333 x 517 and 330 x 500 share 384 x 640


def test_the_labels_own_view_is_rescaled_alike(tiny_config, tiny_variables):
  predictor = inference.Predictor(tiny_variables, tiny_config.model)
  predictor.label_size = 224  # as a frozen encoder's at another global size has
  rng = np.random.default_rng(1)
  for height, width in [(333, 517), (64, 100), (1, 1)]:
    x = rng.random((height, width, 1), dtype=np.float32)
    global_input, label_input = predictor._rescale(x)
    # At 224, jax.image.resize's own float32 weights are off by up to 1.1e-5 (measured:
    # in float64 it agrees with these weights to 1e-7).
    for view, size, atol in ((global_input, predictor.global_size, 1e-6),
                             (label_input, 224, 2e-5)):
      want = np.asarray(inference.resize_to_square(jnp.asarray(x), size))
      assert view.shape == (size, size, 1)
      np.testing.assert_allclose(view, want, rtol=0, atol=atol)


def test_padding_repeats_the_edge_to_the_stride_then_zeros():
  x = np.arange(2 * 13 * 10, dtype=np.float32).reshape(13, 10, 2)
  padded, valid = buckets.pad(x)
  assert padded.shape == (64, 64, 2) and tuple(valid) == (16, 16)
  np.testing.assert_array_equal(padded[:13, :10], x)
  np.testing.assert_array_equal(padded[15, :10, 0], x[12, :, 0])  # L: the last row
  np.testing.assert_array_equal(padded[15, 15, 0], x[12, 9, 0])
  assert not padded[13:16, :, 1].any() and not padded[:, 10:16, 1].any()  # hint planes: none
  assert not padded[16:].any() and not padded[:, 16:].any()


@pytest.mark.parametrize('height,width', [(1, 1), (333, 517)])
def test_a_padded_photo_gives_its_own_size_result(tiny_config, tiny_variables, height, width):
  l = photo_l('astronaut', height, width)
  predictor = inference.Predictor(tiny_variables, tiny_config.model)
  got = predictor(l)
  exact = jax.jit(lambda v, x, g: inference.colorize_l(predictor.model, v, x, g))
  l_HxWx1 = jnp.asarray(l)[..., None]
  rgb, logits = exact(predictor.variables, l_HxWx1,
                      inference.resize_to_square(l_HxWx1, predictor.global_size))
  rgb_64, probabilities_64 = float64_reference(tiny_config.model, tiny_variables, l)
  # Two float32 evaluations, each within a tenth of an 8-bit level of float64, and
  # so never more than one level apart.
  for rgb_32 in (got.rgb, np.asarray(rgb)):
    assert np.abs(rgb_32 - rgb_64).max() < 0.1 / 255
  levels = np.abs(images.to_uint8(got.rgb).astype(int) - images.to_uint8(np.asarray(rgb)))
  assert levels.max() <= 1
  np.testing.assert_allclose(got.probabilities, jax.nn.softmax(logits), rtol=0,
                             atol=2 * np.abs(got.probabilities - probabilities_64).max())


def test_a_large_padded_tiled_photo_is_within_one_level(tiny_config, tiny_variables):
  """4000 x 3000 runs as 4096 x 3072 in tiles; the exact-size program as 4000 x 3000."""
  l = np.tile(photo_l('astronaut', 512, 512), (8, 6))[:4000, :3000]
  predictor = inference.Predictor(tiny_variables, tiny_config.model)
  got = predictor(l)
  exact = jax.jit(lambda v, x, g: inference.colorize_l(predictor.model, v, x, g, predictor.tile))
  l_HxWx1 = jnp.asarray(l)[..., None]
  rgb, _ = exact(predictor.variables, l_HxWx1,
                 inference.resize_to_square(l_HxWx1, predictor.global_size))
  assert got.rgb.shape == (4000, 3000, 3)
  assert np.abs(got.rgb - np.asarray(rgb)).max() < 0.1 / 255  # a tenth of a level
  levels = np.abs(images.to_uint8(got.rgb).astype(int) - images.to_uint8(np.asarray(rgb)))
  assert levels.max() <= 1


def test_programs_are_bounded_and_the_least_recently_used_go(tiny_config, tiny_variables):
  predictor = inference.Predictor(tiny_variables, tiny_config.model, capacity=2)
  sizes = [(40, 48), (41, 48), (100, 48), (40, 48), (200, 200), (100, 48), (40, 48)]
  for height, width in sizes:  # buckets 64x64, 64x64, 128x64, 64x64, 224x224, 128x64, 64x64
    predictor(photo_l('astronaut', height, width))
  programs = predictor.programs
  # 224x224 drops 128x64 (64x64 was used since), which comes back and drops 64x64,
  # which comes back and drops 224x224.
  assert len(programs) == 2 and {('colorize', 64, 64, False), ('colorize', 128, 64, False)} == set(
      programs._kept)
  assert (programs.compiles, programs.evictions) == (5, 3)
  assert predictor.trace_count == 5


def test_a_program_asked_for_at_once_is_built_once():
  built = []

  def build(key):
    built.append(key)
    time.sleep(0.2)
    return f'program {key}'

  programs = buckets.Programs(build, capacity=8)
  answers = []
  threads = [threading.Thread(target=lambda: answers.append(programs.get('a')))
             for _ in range(4)]
  for thread in threads:
    thread.start()
  for thread in threads:
    thread.join()
  assert built == ['a'] and answers == ['program a'] * 4
  with pytest.raises(ValueError, match='capacity 0'):
    buckets.Programs(build, capacity=0)


def test_warming_up_compiles_ahead_of_the_photos(tiny_config, tiny_variables):
  predictor = inference.Predictor(tiny_variables, tiny_config.model)
  assert predictor.warm_up([(64, 64), (61, 90)]) == 2  # buckets 64x64 and 64x96
  traced = predictor.trace_count
  predictor(photo_l('astronaut', 57, 64))
  predictor(photo_l('astronaut', 40, 90))
  assert predictor.trace_count == traced == 2
  assert predictor.warm_up([(64, 64)]) == 0  # already there
  common = buckets.common()
  assert (1024, 1024) in common and (768, 1024) in common and (1024, 1536) in common
  assert max(max(pair) for pair in common) == 2048
