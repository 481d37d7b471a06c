"""Test setup: 4 fake CPU devices (for pmap), fast CPU convolutions, tiny models.

XLA_FLAGS must be set before JAX starts its backend.
"""
import os
import tempfile

os.environ['XLA_FLAGS'] = ' '.join([
    os.environ.get('XLA_FLAGS', ''),
    '--xla_force_host_platform_device_count=4',
]).strip()
# Tests (and the processes they start) compile the same tiny steps many times.
os.environ.setdefault('JAX_COMPILATION_CACHE_DIR', tempfile.mkdtemp(prefix='jaxcolor-xla-'))
os.environ.setdefault('JAXCOLOR_CACHE_DIR', os.environ['JAX_COMPILATION_CACHE_DIR'])  # infer.py's

import jaxcolor

jaxcolor.enable_fast_cpu_convolutions()  # as the commands do (test_imports.py checks it)

import flax  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402
from skimage import data as skdata  # noqa: E402

from configs import tiny  # noqa: E402
from jaxcolor import checkpoint  # noqa: E402
from jaxcolor import color  # noqa: E402
from jaxcolor import hints as hints_lib  # noqa: E402
from jaxcolor import model as model_lib  # noqa: E402

PHOTOS = ('astronaut', 'coffee', 'chelsea', 'rocket')


def photo(name):
  """One of scikit-image's bundled colour photographs, H x W x 3 uint8."""
  return getattr(skdata, name)()[..., :3]


def data_config(tfds_dir, crop_size, batch_size, **data):
  """tiny's config reading data into tfds_dir, with what data tests rely on set explicitly."""
  config = tiny.get_config()
  config.data.tfds_dir = str(tfds_dir)
  config.data.crop_size = crop_size
  config.data.num_workers = 0
  config.batch_size = batch_size
  config.seed = 0
  for key, value in data.items():
    config.data[key] = value
  return config


@pytest.fixture(scope='session')
def tiny_config():
  return tiny.get_config()


@pytest.fixture(scope='session')
def tiny_variables(tiny_config):
  """Tiny-model variables whose BatchNorm statistics come from real photos.

  Freshly initialised statistics (mean 0, variance 1) make eval-mode outputs
  sit at 0.5; a few train-mode passes over photo crops give realistic ones.
  """
  return calibrated(model_lib.from_config(tiny_config.model), jax.random.key(0),
                    tiny_config.model.global_size)


def calibrated(model, key, size):
  """Fresh variables of `model` whose BatchNorm statistics come from photo crops
  (with random hint planes for a model that takes hints)."""
  variables = jax.jit(model.init, static_argnames='train')(
      key, jnp.zeros((1, size, size, model.input_channels)), train=False)
  crops = np.stack([photo(name)[100:100 + size, 100:100 + size] for name in PHOTOS])
  x = jnp.asarray(color.rgb_to_network(crops / 255.0)[0], jnp.float32)
  if model.hints:
    planes = jax.random.uniform(key, x.shape[:3] + (3,), minval=-0.5, maxval=0.5)
    x = jnp.concatenate([x, planes.at[..., 2].set(planes[..., 2] > 0)], axis=-1)

  @jax.jit
  def update(variables):
    _, updates = model.apply(variables, x, train=True, mutable=['batch_stats'])
    return {**variables, **updates}

  for _ in range(30):
    variables = update(variables)
  return variables


def random_variables(config, seed):
  """Variables of the model of `config`, drawn at random without compiling its init:
  He-scaled kernels, and every BatchNorm (the encoder's too) with its own scale, bias
  and running statistics, so that folding them is tested."""
  model = model_lib.from_config(config)
  size = config.global_size
  shapes = jax.eval_shape(model.init, jax.random.key(0),
                          jnp.zeros((1, size, size, model.input_channels)))
  rng = np.random.default_rng(seed)
  draw = {'kernel': lambda s: rng.normal(0, np.sqrt(2 / np.prod(s[:-1])), s),
          'bias': lambda s: rng.normal(0, 0.1, s), 'mean': lambda s: rng.normal(0, 0.1, s),
          'scale': lambda s: rng.uniform(0.5, 1.5, s), 'var': lambda s: rng.uniform(0.5, 1.5, s)}
  return flax.traverse_util.unflatten_dict({
      path: jnp.asarray(draw[path[-1]](leaf.shape), jnp.float32)
      for path, leaf in flax.traverse_util.flatten_dict(shapes).items()})


@pytest.fixture(scope='session')
def tiny_checkpoint(tmp_path_factory, tiny_config, tiny_variables):
  """A tiny model written with orbax, as infer.py reads it."""
  path = tmp_path_factory.mktemp('checkpoint') / 'tiny'
  checkpoint.save(path, tiny_variables, tiny_config.model, ['beach', 'forest', 'street', 'room'])
  return path


def tiny_model_config(tiny_config, **options):
  """The tiny model's config with some options (hints=True, head='bins') set."""
  config = tiny_config.model.copy_and_resolve_references()
  for key, value in options.items():
    config[key] = value
  return config


@pytest.fixture(scope='session')
def hint_variables(tiny_variables):
  """The tiny model given hint inputs, their weights then made non-zero (as training would)."""
  variables = hints_lib.with_hint_inputs(tiny_variables)
  conv = variables['params']['low_level']['conv1']['conv']
  noise = jax.random.normal(jax.random.key(3), conv['kernel'].shape[:2] + (3,) +
                            conv['kernel'].shape[3:])
  conv['kernel'] = conv['kernel'].at[:, :, 1:].set(noise)
  return variables


@pytest.fixture(scope='session')
def hint_checkpoint(tmp_path_factory, tiny_config, hint_variables):
  """A tiny model that takes hints, written with orbax."""
  path = tmp_path_factory.mktemp('hints') / 'model'
  checkpoint.save(path, hint_variables, tiny_model_config(tiny_config, hints=True))
  return path


@pytest.fixture(scope='session')
def steerable_checkpoint(tmp_path_factory, tiny_config):
  """A tiny model with both options that steer it: hints and a colour-distribution head."""
  config = tiny_model_config(tiny_config, hints=True, head='bins')
  variables = calibrated(model_lib.from_config(config), jax.random.key(4), config.global_size)
  path = tmp_path_factory.mktemp('steerable') / 'model'
  checkpoint.save(path, variables, config)
  return path


@pytest.fixture(scope='session')
def photo_folders(tmp_path_factory):
  """(train, val) folders of real photo crops, one class sub-folder per photo."""
  root = tmp_path_factory.mktemp('photos')
  corners = {'train': ((0, 20), (60, 80), (120, 140), (180, 200)), 'val': ((210, 0),)}
  for split, offsets in corners.items():
    for name in PHOTOS:
      (root / split / name).mkdir(parents=True)
      for i, (top, left) in enumerate(offsets):
        crop = photo(name)[top:top + 80, left:left + 80]
        Image.fromarray(crop).save(root / split / name / f'{i}.jpg', quality=92)
  return root / 'train', root / 'val'


@pytest.fixture
def train_config(tiny_config, photo_folders, tmp_path_factory):
  """The tiny config reading the photo folders, with labels from sub-folders."""
  config = tiny_config.copy_and_resolve_references()
  config.data.folder, config.data.val_folder = map(str, photo_folders)
  config.data.labels = 'source'
  config.data.tfds_dir = str(tmp_path_factory.getbasetemp() / 'tfds')
  return config
