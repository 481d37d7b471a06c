"""Every fast path computes what the plain one does.

- stride-2 convolutions: input gradient by output phase ('cpu' kernels) == XLA's;
- Adadelta in fused form (train_step.adadelta) == optax.adadelta;
- Winograd convolutions (inference) == XLA's convolutions;
- tiled inference == untiled inference up to float32 rounding (measured against
  float64), and the tiles' context (LOCAL_REACH) is really all the local path
  looks at.
"""
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxcolor import images
from jaxcolor import inference
from jaxcolor import model as model_lib
from jaxcolor import ops
from jaxcolor import tiling
from jaxcolor.training import train_step
from test_inference import photo_l


@pytest.mark.parametrize('shape', [(2, 8, 8, 3), (1, 7, 9, 4), (2, 5, 6, 2), (1, 1, 1, 3)])
def test_stride2_convolution_gradients_match_xla(shape):
  rng = np.random.default_rng(sum(shape))
  x = jnp.asarray(rng.standard_normal(shape), jnp.float32)
  w = jnp.asarray(rng.standard_normal((3, 3, shape[-1], 5)), jnp.float32)

  def loss(kernels):
    return lambda x, w: jnp.sum(jnp.sin(ops.conv(x, w, 2, kernels)))

  assert ops.conv(x, w, 2, 'cpu').shape[1:3] == ((shape[1] + 1) // 2, (shape[2] + 1) // 2)
  plain = jax.grad(loss('xla'), (0, 1))(x, w)
  fast = jax.grad(loss('cpu'), (0, 1))(x, w)
  for a, b in zip(plain, fast):
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)
  # The phase path is really the one taken: its VJP has no input-dilated convolution.
  assert 'lhs_dilate = [2, 2]' not in jax.jit(jax.grad(loss('cpu'))).lower(x, w).as_text()
  assert 'lhs_dilate = [2, 2]' in jax.jit(jax.grad(loss('xla'))).lower(x, w).as_text()


@pytest.mark.parametrize('kernels', ops.KERNELS)
def test_convolutions_are_xla_own_forward(kernels):
  x = jnp.asarray(np.random.default_rng(0).standard_normal((1, 9, 8, 2)), jnp.float32)
  for size, stride in ((3, 1), (3, 2), (1, 1), (1, 2)):
    w = jnp.asarray(np.random.default_rng(size).standard_normal((size, size, 2, 4)),
                    jnp.float32)
    np.testing.assert_array_equal(
        ops.conv(x, w, stride, kernels),
        lax.conv_general_dilated(x, w, (stride, stride), [(size // 2, size // 2)] * 2,
                                 dimension_numbers=('NHWC', 'HWIO', 'NHWC')))


def test_fused_adadelta_matches_optax():
  rng = np.random.default_rng(0)
  params = {'a': jnp.asarray(rng.standard_normal((5, 3)), jnp.float32),
            'b': [jnp.asarray(rng.standard_normal(4), jnp.float32)]}
  results = []
  for tx in (optax.adadelta(0.7, rho=0.95, eps=1e-6), train_step.adadelta(0.7, 0.95, 1e-6)):
    p, state = params, tx.init(params)
    for i in range(20):
      grads = jax.tree.map(lambda x: jnp.cos(x * (i + 1)), p)
      updates, state = jax.jit(tx.update)(grads, state, p)
      p = optax.apply_updates(p, updates)
    results.append((p, state))
  (p_optax, s_optax), (p_fast, s_fast) = results
  # Same state structure: checkpoints of either restore into the other.
  assert jax.tree.structure(s_fast) == jax.tree.structure(s_optax)
  assert jnp.abs(p_optax['a'] - params['a']).max() > 1e-3  # it moved
  for a, b in zip(jax.tree.leaves((p_optax, s_optax)), jax.tree.leaves((p_fast, s_fast))):
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize('length,tile', [(4096, 2048), (3000, 2048), (200, 64), (136, 64),
                                         (8192, 2048), (64, 64)])
def test_tile_layout_covers_the_image_with_context(length, tile):
  reach = model_lib.LOCAL_REACH
  core, window, starts = tiling.layout(length, tile)
  assert core <= tile and core % 8 == 0 and window % 8 == 0 or length <= tile
  covered = np.zeros(length, bool)
  for window_start, core_start in starts:
    assert window_start % 8 == 0 and core_start % 8 == 0
    assert 0 <= window_start <= core_start and core_start + core <= window_start + window <= length
    # Context on each side: `reach` pixels, or the image border.
    assert core_start - window_start >= reach or window_start == 0
    assert window_start + window - (core_start + core) >= reach or window_start + window == length
    covered[core_start:core_start + core] = True
  assert covered.all()


def test_local_path_reaches_exactly_local_reach(tiny_config, tiny_variables):
  """Changing one input pixel changes outputs up to LOCAL_REACH pixels away, never further."""
  model = model_lib.from_config(tiny_config.model)
  size, centre = 256, 133
  l = jnp.asarray(photo_l('astronaut', size, size))[None, ..., None]
  _, global_256 = model.apply(tiny_variables, l[:, :32, :32], method='global_features')
  local = jax.jit(lambda l: model.apply(tiny_variables, l, global_256, method='local_path'))
  farthest = 0
  for pixel in range(centre, centre + 8):  # every phase of the stride-8 grid
    changed = np.abs(np.asarray(local(l.at[0, pixel, pixel, 0].add(0.5)) - local(l)))
    rows = np.nonzero(changed.max(axis=(0, 2, 3)) > 0)[0]  # half-resolution rows
    farthest = max(farthest, pixel - 2 * rows.min(), 2 * rows.max() + 1 - pixel)
  assert farthest == model_lib.LOCAL_REACH


def float64_reference(model_config, variables, l_HxW, style_l=None):
  """The Predictor's sRGB and probabilities computed in float64 (plain XLA
  convolutions): what float32 inference approximates."""
  with jax.enable_x64(True):
    config = model_config.copy_and_resolve_references()
    config.dtype = config.param_dtype = 'float64'
    model = model_lib.from_config(config, kernels='xla')
    variables = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), variables)
    l_HxWx1 = jnp.asarray(l_HxW, jnp.float64)[..., None]
    source = l_HxWx1 if style_l is None else jnp.asarray(style_l, jnp.float64)[..., None]
    l_global = inference.resize_to_square(source, config.global_size)
    rgb, logits = inference.colorize_l(model, variables, l_HxWx1, l_global)
    return np.asarray(rgb), np.asarray(jax.nn.softmax(logits))


def assert_equal_up_to_float32_rounding(got, want, reference):
  """`got` and `want` are float32 evaluations of one function whose float64
  value is `reference`: they differ by no more than `want`'s own rounding error,
  and their 8-bit images (images.to_uint8) are equal except by one level where
  `want` lies within that error of a rounding boundary."""
  rounding = float(np.abs(want - reference).max())
  assert 0 < rounding < 0.1 / 255, rounding  # a tenth of an 8-bit level at most
  np.testing.assert_allclose(got, want, rtol=0, atol=rounding)
  got_8bit, want_8bit = (images.to_uint8(x).astype(np.int16) for x in (got, want))
  differ = got_8bit != want_8bit
  assert np.abs(got_8bit - want_8bit).max() <= 1
  level = np.clip(want[differ], 0, 1) * 255
  assert np.all(np.abs(level - np.floor(level) - 0.5) <= rounding * 255), level


@pytest.mark.parametrize('height,width', [(203, 150), (96, 200)])
def test_tiled_inference_equals_untiled_up_to_float32_rounding(tiny_config, tiny_variables,
                                                               height, width):
  """Tiles run other shapes, so XLA may pick other convolution algorithms and
  summation orders (which ones depends on the CPU): the promise is equality up to
  float32 rounding, measured here against a float64 evaluation."""
  l = photo_l('astronaut', height, width)
  style = photo_l('coffee', 100, 120)
  whole = inference.Predictor(tiny_variables, tiny_config.model, tile=None)
  tiled = inference.Predictor(tiny_variables, tiny_config.model, tile=64)
  assert len(tiling.layout(height + -height % 8, 64)[2]) > 1  # really tiled
  for style_l in (None, style):
    a, b = whole(l, style_l), tiled(l, style_l)
    rgb_64, probabilities_64 = float64_reference(tiny_config.model, tiny_variables, l, style_l)
    assert_equal_up_to_float32_rounding(b.rgb, a.rgb, rgb_64)
    np.testing.assert_allclose(b.probabilities, a.probabilities, rtol=0,
                               atol=np.abs(a.probabilities - probabilities_64).max())
  assert tiled.trace_count == 1 and whole.trace_count == 1  # the global input is G x G either way


@pytest.mark.parametrize('shape', [(1, 28, 28, 16), (2, 7, 9, 3), (1, 1, 1, 4), (1, 5, 13, 8)])
def test_winograd_convolution_matches_xla(shape):
  rng = np.random.default_rng(sum(shape))
  x = jnp.asarray(rng.standard_normal(shape), jnp.float32)
  w = jnp.asarray(rng.standard_normal((3, 3, shape[-1], 6)), jnp.float32)
  plain = lax.conv_general_dilated(x, w, (1, 1), ((1, 1), (1, 1)),
                                   dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  fast = ops.winograd_conv3x3(x, ops.winograd_weights(w))
  assert fast.shape == plain.shape
  np.testing.assert_allclose(fast, plain, atol=3e-5 * float(jnp.abs(plain).max()))


def test_predictor_with_winograd_layers_matches_plain(tiny_config, tiny_variables, monkeypatch):
  """The tiny model's layers are too narrow for Winograd by default; lower the bar."""
  l = photo_l('astronaut', 72, 56)
  narrow = inference.Predictor(tiny_variables, tiny_config.model)
  assert narrow.model.kernels == 'cpu' and 'winograd' not in narrow.variables
  monkeypatch.setattr(ops, 'WINOGRAD_MIN_CHANNELS', 1)
  plain = inference.Predictor(tiny_variables, tiny_config.model, kernels='xla')
  assert 'winograd' not in plain.variables
  # Transformed kernels are an inference-time cache: never initialised, trained or saved.
  init = model_lib.from_config(tiny_config.model, kernels='cpu').init(
      jax.random.key(0), jnp.zeros((1, 32, 32, 1)), train=False)
  assert set(init) == {'params', 'batch_stats'}
  fast = inference.Predictor(tiny_variables, tiny_config.model)
  transformed = fast.variables['winograd']
  # Every stride-1 3x3 layer of the trunk, mid-level, global and colorization nets.
  assert set(transformed['low_level']) == {'conv2', 'conv4', 'conv6'}
  assert set(transformed['colorization']) == {'conv1', 'conv2', 'conv3', 'conv4'}
  assert transformed['mid_level']['conv1']['conv']['kernel'].shape[0] == 36
  for style_l in (None, photo_l('coffee', 40, 40)):
    a, b = plain(l, style_l), fast(l, style_l)
    # Winograd rounding through 13 layers: 2e-5 to 7e-5 measured (AMD EPYC), a
    # sixtieth of one 8-bit level; the promise is a tenth of a level.
    np.testing.assert_allclose(b.rgb, a.rgb, atol=0.1 / 255)
    np.testing.assert_allclose(b.probabilities, a.probabilities, atol=1e-4)
