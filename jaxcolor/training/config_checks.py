"""Checks a training config before anything is built or compiled.

Each problem is one line that names the field, its value and what it must be.
"""
import os

import jax

from jaxcolor import encoder as encoder_lib
from jaxcolor import model as model_lib
from jaxcolor import teacher

SOURCES = ('places365', 'folder', 'mix')
LABELS = ('none', 'source', 'teacher', 'teacher_soft')
GLOBAL_VIEWS = ('crop', 'photo')
HEADS = ('regression', 'bins')


class ConfigError(ValueError):
  """A config field with a value training cannot use."""


def _require(ok, field, value, what):
  if not ok:
    raise ConfigError(f'config.{field}={value!r}: {what}')


def _folder(field, path):
  _require(os.path.isdir(os.path.expanduser(path)), field, path, 'no such folder')


def check(config, process_count=None, local_device_count=None):
  """Raises ConfigError on the first field that cannot work."""
  data, model = config.data, config.model
  check_data(data)
  _require(data.crop_size >= model_lib.STRIDE and data.crop_size % model_lib.STRIDE == 0,
           'data.crop_size', data.crop_size,
           f"must be a positive multiple of {model_lib.STRIDE}, the local path's stride")
  _require(model.global_size >= model_lib.GLOBAL_STRIDE and
           model.global_size % model_lib.GLOBAL_STRIDE == 0, 'model.global_size',
           model.global_size,
           f"must be a positive multiple of {model_lib.GLOBAL_STRIDE}, the global path's stride")
  _require(model.get('head', 'regression') in HEADS, 'model.head', model.get('head'),
           f'must be one of {HEADS}')
  _require(model.get('encoder', '') in ('', *encoder_lib.ENCODERS), 'model.encoder',
           model.get('encoder'), f"must be '' or one of {encoder_lib.ENCODERS}")
  _require(not model.get('encoder') or data.get('labels', 'source') == 'none', 'data.labels',
           data.get('labels'), "must be 'none' with an encoder: its ImageNet classifier names "
           'the scenes')
  _require(0 < data.get('hints_p', 1 / 8) <= 1, 'data.hints_p', data.get('hints_p'),
           'must be above 0 and at most 1 (the chance that a crop gets no hint)')
  _require(data.get('hints_max_side', 9) >= 1, 'data.hints_max_side',
           data.get('hints_max_side'), 'must be at least 1 px')
  if config.get('init_from'):
    _require(os.path.isdir(os.path.expanduser(config.init_from)), 'init_from', config.init_from,
             'no such checkpoint folder')
  hosts = process_count or jax.process_count()
  devices = local_device_count or jax.local_device_count()
  _require(config.batch_size > 0 and config.batch_size % (hosts * devices) == 0, 'batch_size',
           config.batch_size, f'must split evenly over {hosts} host(s) x {devices} device(s)')


def check_data(data):
  """The `config.data` part of `check`: what the input pipeline checks before it
  builds anything."""
  _require(data.source in SOURCES, 'data.source', data.source, f'must be one of {SOURCES}')
  _require(data.get('labels', 'source') in LABELS, 'data.labels', data.get('labels'),
           f'must be one of {LABELS}')
  _require(data.get('global_view', 'crop') in GLOBAL_VIEWS, 'data.global_view',
           data.get('global_view'), f'must be one of {GLOBAL_VIEWS}')
  if data.source == 'folder':
    _require(bool(data.folder), 'data.folder', data.folder, "source='folder' needs a folder")
    _folder('data.folder', data.folder)
  if data.source == 'mix':
    _require(bool(data.get('sources')), 'data.sources', {}, "source='mix' needs sources")
    for name, spec in data.sources.items():
      _require(name != 'val' and '/' not in name, f'data.sources.{name}', name,
               "a source's name must not be 'val' or hold '/' (validation sets are named so)")
      _require(bool(spec.get('folder')), f'data.sources.{name}.folder', spec.get('folder'),
               'every source needs a folder')
      _folder(f'data.sources.{name}.folder', spec.folder)
      _require(spec.get('weight', 1.0) >= 0, f'data.sources.{name}.weight', spec.get('weight'),
               'must not be negative')
      _require(spec.get('holdout', 0) >= 0, f'data.sources.{name}.holdout', spec.get('holdout'),
               'must not be negative')
  if data.get('val_folder'):
    _folder('data.val_folder', data.val_folder)
  _check_labels(data)


def _check_labels(data):
  """Labels the source can have, and the teacher's files where training needs them."""
  labels = data.get('labels', 'source')
  if data.source == 'places365':
    _require(labels in ('none', 'source'), 'data.labels', labels,
             "Places365 has only its own scene labels ('source') or 'none'")
  if labels not in ('teacher', 'teacher_soft') or data.source == 'places365':
    return
  if data.source == 'folder':
    files = {'data.teacher_labels': (data.get('teacher_labels'), data.folder)}
  else:
    files = {f'data.sources.{n}.teacher_labels': (s.get('teacher_labels'), s.folder)
             for n, s in data.sources.items()}
  for field, (path, folder) in files.items():
    path = path or os.path.join(folder, teacher.LABELS_FILE)
    _require(os.path.isfile(os.path.expanduser(path)), field, path,
             f'no teacher labels there; make them with `python label.py --folder {folder} '
             f'--teacher MODEL_DIR --output {path}`')
