"""Orbax checkpoints of a model: weights, BatchNorm statistics and what built them.

  python average.py runs/mine/checkpoints exported/   # standalone copy of a model
  python average.py runs/mine/checkpoints/{16000,18000,20000} averaged/

A checkpoint is a folder with (at least) two orbax items:
  model/  {'params', 'batch_stats'} as saved by StandardSave
  meta/   JSON: {'model': the config's model section, 'class_names': [...], 'step': N}
Training checkpoints (a CheckpointManager's numbered step folders) add more
items beside them; `resolve` accepts either kind of folder.
"""
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from jaxcolor import model as model_lib

MODEL = 'model'
META = 'meta'
# The trained model that ships inside the package (see MODEL.md).
BUNDLED = pathlib.Path(__file__).parent / 'assets' / 'model'


class CheckpointError(ValueError):
  """A checkpoint is missing, damaged or does not fit the model."""


def model_or_bundled(path=None, command='infer.py --image photo.jpg'):
  """`path`, else the bundled model; without either, a CheckpointError that says
  how to train one and point `command` at it."""
  if path is not None:
    return path
  if not BUNDLED.exists():
    raise CheckpointError(
        'no trained model is available: this copy of jaxcolor has none bundled\n'
        f'({BUNDLED} is missing) and --checkpoint was not given.\n'
        'Train one on a folder of colour photos and point --checkpoint at its workdir:\n'
        '  python train.py --config configs/folder.py --workdir runs/mine '
        '--config.data.folder=PHOTOS\n'
        f'  python {command} --checkpoint runs/mine/checkpoints')
  return BUNDLED


def save_args(variables, model_config, class_names=None, step=0):
  """Orbax Composite items for `variables` ({'params', 'batch_stats'})."""
  meta = {'model': dict(model_config), 'class_names': list(class_names or []),
          'step': int(step)}
  return {MODEL: ocp.args.StandardSave(variables), META: ocp.args.JsonSave(meta)}


def save(directory, variables, model_config, class_names=None, step=0):
  """Writes a standalone checkpoint folder; refuses to replace an existing one."""
  directory = pathlib.Path(directory).absolute()
  if directory.exists():
    raise CheckpointError(f'{directory}: already exists; choose a new folder')
  items = save_args(variables, model_config, class_names, step)
  with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as checkpointer:
    checkpointer.save(directory, ocp.args.Composite(**items))


def resolve(path):
  """A checkpoint folder, or the newest complete step of a CheckpointManager folder."""
  path = pathlib.Path(path).expanduser().absolute()
  if not path.is_dir():
    raise CheckpointError(f'{path}: no such checkpoint folder')
  if (path / META).is_dir():
    return path
  # Orbax writes a step into a temporary name and renames it when complete, so
  # only folders named by a bare step number are finished checkpoints.
  steps = sorted((int(p.name) for p in path.iterdir()
                  if p.name.isdigit() and (p / META).is_dir()), reverse=True)
  if not steps:
    raise CheckpointError(f'{path}: not a jaxcolor checkpoint (no {META}/ folder and '
                          'no finished numbered step inside)')
  return path / str(steps[0])


def read_meta(path):
  """The JSON metadata of a checkpoint folder (see `resolve`)."""
  path = resolve(path)
  try:
    with ocp.Checkpointer(ocp.JsonCheckpointHandler()) as checkpointer:
      return checkpointer.restore(path / META, ocp.args.JsonRestore())
  except Exception as e:  # orbax raises many types for damaged files
    raise CheckpointError(f'{path / META}: unreadable checkpoint metadata ({e})') from e


def abstract_variables(model_config):
  """Shapes and dtypes of {'params', 'batch_stats'} for a model config."""
  model = model_lib.from_config(model_config)
  size = model_config.global_size
  return jax.eval_shape(
      lambda: model.init(jax.random.key(0), jnp.zeros((1, size, size, model.input_channels)),
                         train=False))


def check_fits(expected, saved):
  """Raises CheckpointError naming the first layer whose shape differs."""
  expected_leaves = dict(_leaves(expected))
  saved_leaves = dict(_leaves(saved))
  for name in sorted(expected_leaves.keys() | saved_leaves.keys()):
    want, have = expected_leaves.get(name), saved_leaves.get(name)
    if want != have:
      raise CheckpointError(
          f'checkpoint does not fit the model: first mismatch at {name}: '
          f'checkpoint has {_describe(have)}, model expects {_describe(want)}')


def _leaves(tree):
  flat = jax.tree_util.tree_flatten_with_path(tree)[0]
  return [('/'.join(str(getattr(k, 'key', k)) for k in path), tuple(leaf.shape))
          for path, leaf in flat]


def _describe(shape):
  return 'nothing' if shape is None else f'shape {shape}'


def load(path, model_config=None):
  """Restores (variables, model_config, class_names) from a checkpoint folder.

  The model config defaults to the one saved in the checkpoint; passing one
  checks that the checkpoint fits it.
  """
  path = resolve(path)
  meta = read_meta(path)
  if model_config is None:
    model_config = ml_collections.ConfigDict(meta['model'])
  expected = abstract_variables(model_config)
  try:
    with ocp.StandardCheckpointer() as checkpointer:
      saved = checkpointer.metadata(path / MODEL).item_metadata.tree
  except Exception as e:
    raise CheckpointError(f'{path / MODEL}: unreadable checkpoint ({e})') from e
  check_fits(expected, saved)
  try:
    with ocp.StandardCheckpointer() as checkpointer:
      variables = checkpointer.restore(path / MODEL, expected)
  except Exception as e:
    raise CheckpointError(f'{path / MODEL}: damaged checkpoint ({e})') from e
  return variables, model_config, meta.get('class_names') or None


def export(source, destination):
  """Writes the model of a (training) checkpoint as a standalone checkpoint folder."""
  variables, model_config, class_names = load(source)
  save(destination, variables, model_config, class_names, read_meta(source)['step'])


def average(sources, destination):
  """Writes the mean of several checkpoints of one model as a standalone checkpoint.

  Weights and BatchNorm statistics are averaged element-wise (in float32, stored
  back in their own dtype): averaging the checkpoints of the last stretch of a
  run damps the step-to-step wander of SGD-like training (Polyak averaging,
  taken after the fact). The result carries the newest source's step.
  """
  loaded = [load(source) for source in sources]
  _, model_config, class_names = loaded[0]
  for source, (_, config, names) in zip(sources[1:], loaded[1:]):
    if config.to_dict() != model_config.to_dict():
      raise CheckpointError(f'{source}: a different model than {sources[0]}; '
                            'only checkpoints of one model can be averaged')
    if names != class_names:
      raise CheckpointError(f'{source}: different class names than {sources[0]}')

  def mean(*arrays):
    total = sum(np.asarray(a, np.float32) for a in arrays)
    return jnp.asarray(total / len(arrays), arrays[0].dtype)

  variables = jax.tree.map(mean, *(variables for variables, _, _ in loaded))
  step = max(read_meta(source)['step'] for source in sources)
  save(destination, variables, model_config, class_names, step)
