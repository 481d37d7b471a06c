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
  return jax.jit(model.apply, static_argnames=('train', 'mutable'))(*args, **kwargs)


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


def test_paper_flops():
  # PAPER.md: 17.2 / 87 / 319 / 1247 GFLOPs at 224 / 512 / 1024 / 2048.
  for size, gflops in [(224, 17.2), (512, 87), (1024, 319), (2048, 1247)]:
    assert model_lib.flops(size, size) / 1e9 == pytest.approx(gflops, rel=5e-3)


def test_width_and_classes_come_from_config(tiny_config):
  variables = shapes(model_lib.from_config(tiny_config.model), 32)
  found = kernels(variables['params'])
  assert found['low_level/conv1'] == (3, 3, 1, 8)
  assert found['global/fc1'] == (1 * 1 * 64, 128)  # 32x32 global input -> 1x1x64
  assert found['classifier/logits'] == (32, tiny_config.model.num_classes)


@pytest.mark.parametrize('height,width', [(32, 32), (8, 8), (40, 96), (128, 24)])
def test_tiny_forward_shapes_and_ranges(tiny_config, tiny_variables, height, width):
  model = model_lib.from_config(tiny_config.model)
  l_local = jax.random.uniform(jax.random.key(2), (2, height, width, 1))
  l_global = jax.random.uniform(jax.random.key(3), (2, 32, 32, 1))
  ab, logits = apply(model, tiny_variables, l_local, l_global, train=False)
  assert ab.shape == (2, height // 2, width // 2, 2)
  assert logits.shape == (2, tiny_config.model.num_classes)
  assert float(ab.min()) >= 0.0 and float(ab.max()) <= 1.0
  assert np.isfinite(np.asarray(logits)).all()


def test_global_size_input_shares_the_trunk(tiny_config, tiny_variables):
  model = model_lib.from_config(tiny_config.model)
  l = jax.random.uniform(jax.random.key(4), (2, 32, 32, 1))
  shared = apply(model, tiny_variables, l, train=False)
  separate = apply(model, tiny_variables, l, l, train=False)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), shared, separate)


def test_global_features_change_the_colours(tiny_config, tiny_variables):
  model = model_lib.from_config(tiny_config.model)
  l = jax.random.uniform(jax.random.key(5), (1, 32, 32, 1))
  ab_a, _ = apply(model, tiny_variables, l, jnp.zeros((1, 32, 32, 1)), train=False)
  ab_b, _ = apply(model, tiny_variables, l, jnp.ones((1, 32, 32, 1)), train=False)
  # At initialisation the outputs sit near 0.5; ignoring the global path would
  # make them exactly equal.
  assert float(jnp.abs(ab_a - ab_b).max()) > 1e-6


def test_train_mode_uses_and_updates_batch_statistics(tiny_config, tiny_variables):
  model = model_lib.from_config(tiny_config.model)
  l = jax.random.uniform(jax.random.key(6), (4, 32, 32, 1))
  (ab_train, _), updates = apply(model, tiny_variables, l, train=True, mutable=('batch_stats',))
  ab_eval, _ = apply(model, tiny_variables, l, train=False)
  assert float(jnp.abs(ab_train - ab_eval).max()) > 1e-4
  old = tiny_variables['batch_stats']['low_level']['conv1']['bn']['mean']
  new = updates['batch_stats']['low_level']['conv1']['bn']['mean']
  assert float(jnp.abs(new - old).max()) > 0
