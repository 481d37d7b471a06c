"""The paper's network, structurally at full size and numerically at tiny size."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcolor import model as model_lib

# Every kernel of the paper's network (Places205), from PAPER.md's table.
PAPER_KERNELS = {
    'low_level/conv1': (3, 3, 1, 64), 'low_level/conv2': (3, 3, 64, 128),
    'low_level/conv3': (3, 3, 128, 128), 'low_level/conv4': (3, 3, 128, 256),
    'low_level/conv5': (3, 3, 256, 256), 'low_level/conv6': (3, 3, 256, 512),
    'mid_level/conv1': (3, 3, 512, 512), 'mid_level/conv2': (3, 3, 512, 256),
    'global/conv1': (3, 3, 512, 512), 'global/conv2': (3, 3, 512, 512),
    'global/conv3': (3, 3, 512, 512), 'global/conv4': (3, 3, 512, 512),
    'global/fc1': (7 * 7 * 512, 1024), 'global/fc2': (1024, 512), 'global/fc3': (512, 256),
    'fusion/conv': (1, 1, 512, 256),
    'colorization/conv1': (3, 3, 256, 128), 'colorization/conv2': (3, 3, 128, 64),
    'colorization/conv3': (3, 3, 64, 64), 'colorization/conv4': (3, 3, 64, 32),
    'colorization/output': (3, 3, 32, 2),
    'classifier/fc1': (512, 256), 'classifier/logits': (256, 205),
}


def apply(model, *args, **kwargs):
  return jax.jit(model.apply, static_argnames=('train', 'mutable', 'method',
                                               'capture_intermediates'))(*args, **kwargs)


def shapes(model, size):
  """Shapes of all variables, without allocating or running the network."""
  return jax.eval_shape(
      lambda: model.init(jax.random.key(0), jnp.zeros((1, size, size, 1)), train=False))


def kernels(params):
  flat = jax.tree_util.tree_flatten_with_path(params)[0]
  names = {'/'.join(k.key for k in path): leaf.shape for path, leaf in flat}
  return {name.rsplit('/', 2)[0] if name.count('/') == 3 else name.rsplit('/', 1)[0]: shape
          for name, shape in names.items() if name.endswith('kernel')}


def test_paper_network_structure():
  variables = shapes(model_lib.Colorizer(width=1.0, num_classes=205), 224)
  assert kernels(variables['params']) == PAPER_KERNELS
  count = sum(np.prod(x.shape) for x in jax.tree.leaves(variables['params']))
  assert count == 42_360_591  # PAPER.md: about 42.36 M
  assert np.prod(PAPER_KERNELS['global/fc1']) == 25_690_112  # "FC-1024 alone is 25.7 M"
  # BatchNorm after every layer but the two outputs: 21 layers.
  assert len(jax.tree.leaves(variables['batch_stats'])) == 2 * 21


@pytest.mark.parametrize('height,width,tolerance', [(2048, 1536, 0.01), (256, 192, 0.05)])
def test_flops_match_xla_cost_analysis(height, width, tolerance):
  """model.flops against XLA's count of the compiled paper network (non-square,
  so the trunk also runs on the 224 x 224 global input).

  XLA counts only the taps of a 3x3 window that fall inside the image, and adds
  BatchNorm, ReLU and resizing, which model.flops leaves out: its count is 0.3%
  lower at 2048 x 1536 and 3.4% at 256 x 192, where small feature maps are more
  border. A missing layer is more: the fusion layer is 2% of the first, the
  global input's run of the trunk 30% of the second.
  """
  model = model_lib.Colorizer(width=1.0, num_classes=205)
  local, global_ = (jax.ShapeDtypeStruct((1, *size, 1), jnp.float32)
                    for size in ((height, width), (224, 224)))
  forward = jax.jit(lambda v, l, g: model.apply(v, l, g, train=False))
  compiled = forward.lower(shapes(model, 224), local, global_).compile()
  assert compiled.cost_analysis()['flops'] == pytest.approx(model_lib.flops(height, width),
                                                            rel=tolerance)


def test_width_and_classes_come_from_config(tiny_config):
  variables = shapes(model_lib.from_config(tiny_config.model), 32)
  found = kernels(variables['params'])
  assert found['low_level/conv1'] == (3, 3, 1, 8)
  assert found['global/fc1'] == (1 * 1 * 64, 128)  # 32x32 global input -> 1x1x64
  assert found['classifier/logits'] == (32, tiny_config.model.num_classes)


@pytest.mark.parametrize('height,width', [(32, 32), (8, 8), (40, 96), (128, 24)])
def test_tiny_forward_shapes(tiny_config, tiny_variables, height, width):
  model = model_lib.from_config(tiny_config.model)
  l_local = jax.random.uniform(jax.random.key(2), (2, height, width, 1))
  l_global = jax.random.uniform(jax.random.key(3), (2, 32, 32, 1))
  ab, logits = apply(model, tiny_variables, l_local, l_global, train=False)
  assert ab.shape == (2, height // 2, width // 2, 2)
  assert logits.shape == (2, tiny_config.model.num_classes)


def test_each_image_of_a_batch_is_colorized_on_its_own(tiny_config, tiny_variables):
  """In eval mode, nothing mixes images: not BatchNorm, not the global path's flattening."""
  model = model_lib.from_config(tiny_config.model)
  l_local = jax.random.uniform(jax.random.key(2), (3, 40, 96, 1))
  l_global = jax.random.uniform(jax.random.key(3), (3, 32, 32, 1))
  batch = apply(model, tiny_variables, l_local, l_global, train=False)
  alone = apply(model, tiny_variables, l_local[1:2], l_global[1:2], train=False)
  jax.tree.map(lambda b, a: np.testing.assert_allclose(b[1:2], a, atol=1e-5), batch, alone)


def test_global_size_input_shares_the_trunk(tiny_config, tiny_variables):
  model = model_lib.from_config(tiny_config.model)
  l = jax.random.uniform(jax.random.key(4), (2, 32, 32, 1))
  shared = apply(model, tiny_variables, l, train=False)
  separate = apply(model, tiny_variables, l, l, train=False)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), shared, separate)


def test_global_features_set_the_colours_through_the_fusion(tiny_config, tiny_variables):
  """The network is the local path fed the global path's vector (tiled inference
  runs it so), and that vector moves a*b* about as much as the photo itself does."""
  model = model_lib.from_config(tiny_config.model)
  l = jax.random.uniform(jax.random.key(5), (1, 32, 48, 1))
  g_a, g_b = (jax.random.uniform(jax.random.key(k), (1, 32, 32, 1)) for k in (6, 7))
  ab_a, logits_a = apply(model, tiny_variables, l, g_a, train=False)
  global_512, global_256 = apply(model, tiny_variables, g_a, method='global_features')
  np.testing.assert_allclose(
      apply(model, tiny_variables, l, global_256, method='local_path'), ab_a, atol=1e-5)
  np.testing.assert_allclose(
      apply(model, tiny_variables, global_512, method='classify'), logits_a, atol=1e-5)
  ab_b, _ = apply(model, tiny_variables, l, g_b, train=False)
  ab_other_photo, _ = apply(model, tiny_variables, jnp.flip(l, axis=2), g_a, train=False)
  # Measured: 0.20 and 0.15 (a*b* in [0, 1]); a global path that barely reached
  # the output (a lost fusion, a near-zero scale) would fall far below.
  global_effect = float(jnp.abs(ab_a - ab_b).mean())
  assert global_effect > 0.25 * float(jnp.abs(ab_a - ab_other_photo).mean())


def test_train_mode_normalizes_with_batch_statistics_and_updates_running_ones(
    tiny_config, tiny_variables):
  model = model_lib.from_config(tiny_config.model)
  l = jax.random.uniform(jax.random.key(6), (4, 32, 32, 1))
  _, state = apply(model, tiny_variables, l, train=True,
                   mutable=('batch_stats', 'intermediates'), capture_intermediates=True)
  conv1 = state['intermediates']['low_level']['conv1']
  x = conv1['conv']['__call__'][0]  # B x H x W x C, before BatchNorm
  mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
  bn = tiny_variables['params']['low_level']['conv1']['bn']
  np.testing.assert_allclose(
      conv1['__call__'][0],
      jax.nn.relu((x - mean) / jnp.sqrt(var + 1e-5) * bn['scale'] + bn['bias']), atol=1e-4)
  old = tiny_variables['batch_stats']['low_level']['conv1']['bn']
  new = state['batch_stats']['low_level']['conv1']['bn']
  np.testing.assert_allclose(new['mean'], 0.9 * old['mean'] + 0.1 * mean, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(new['var'], 0.9 * old['var'] + 0.1 * var, rtol=1e-4, atol=1e-6)
