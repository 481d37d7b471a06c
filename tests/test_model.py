"""The paper's network, structurally at full size and numerically at tiny size."""
import functools

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
  l_local = jax.ShapeDtypeStruct((2, height, width, 1), jnp.float32)
  l_global = jax.ShapeDtypeStruct((2, 32, 32, 1), jnp.float32)
  ab, logits = jax.eval_shape(functools.partial(model.apply, train=False),
                              tiny_variables, l_local, l_global)
  assert ab.shape == (2, height // 2, width // 2, 2)
  assert logits.shape == (2, tiny_config.model.num_classes)


def test_each_image_is_colorized_alone_with_its_global_features(tiny_config, tiny_variables):
  """Nothing mixes the images of a batch in eval mode (not BatchNorm, not the
  global path's flattening), and the global input moves a*b* about as much as
  the photo itself does."""
  model = model_lib.from_config(tiny_config.model)
  l = jax.random.uniform(jax.random.key(5), (1, 32, 48, 1))
  g_a, g_b = (jax.random.uniform(jax.random.key(k), (1, 32, 32, 1)) for k in (6, 7))
  ab, logits = apply(model, tiny_variables, jnp.concatenate([l, jnp.flip(l, axis=2), l]),
                     jnp.concatenate([g_a, g_a, g_b]), train=False)
  alone = apply(model, tiny_variables, l, g_a, train=False)
  np.testing.assert_allclose(ab[:1], alone[0], atol=1e-5)
  np.testing.assert_allclose(logits[:1], alone[1], atol=1e-5)
  # Measured: 0.20 (other global input) and 0.15 (other photo), a*b* in [0, 1];
  # a global path that barely reached the output would fall far below.
  global_effect = float(jnp.abs(ab[0] - ab[2]).mean())
  assert global_effect > 0.25 * float(jnp.abs(ab[0] - ab[1]).mean())


def test_global_size_input_shares_the_trunk(tiny_config, tiny_variables):
  model = model_lib.from_config(tiny_config.model)
  l = jax.random.uniform(jax.random.key(4), (2, 32, 32, 1))
  shared = apply(model, tiny_variables, l, train=False)
  separate = apply(model, tiny_variables, l, l, train=False)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), shared, separate)


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
