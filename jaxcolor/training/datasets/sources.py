"""Where training photos come from and what each one is labelled.

A source spec (`source_specs`) names a folder, its sampling weight, how many
photos it holds out for validation, its teacher labels file and whether its
sub-folders name classes. `class_names` is the label list a config's data
has; `targets` gives each part a `Targets`, which turns a stored example into
the classification branch's target.
"""
import functools
import os

from absl import logging
import ml_collections
import numpy as np

from jaxcolor import teacher
from jaxcolor.training import config_checks
from jaxcolor.training.datasets import folder as folder_lib
from jaxcolor.training.datasets import places365


class Targets:
  """Turns a stored example into class targets: (top-1 label or -1, K ids, K probabilities).

  mode 'none': no label. 'source': the example's own label, mapped to the
  global class list by `mapping` (identity when None). 'teacher': the teacher's
  top-K classes for the example's filename (K = top_k; probabilities
  renormalised over them; top_k 1 is the hard top-1 label).
  """

  def __init__(self, mode='source', top_k=1, mapping=None, teacher=None):
    self.mode, self.top_k, self.mapping, self.teacher = mode, top_k, mapping, teacher

  def __call__(self, example):
    ids, probs = np.zeros(self.top_k, np.int32), np.zeros(self.top_k, np.float32)
    if self.mode == 'teacher':
      hit = self.teacher.get(_text(example.get('filename', b'')))
      if hit is not None:
        n = min(self.top_k, len(hit[0]))
        ids[:n], probs[:n] = hit[0][:n], hit[1][:n]
        probs = probs / probs.sum() if probs.sum() > 0 else np.eye(self.top_k)[0]
    elif self.mode == 'source' and int(example.get('label', -1)) >= 0:
      local = int(example['label'])
      ids[0], probs[0] = (local if self.mapping is None else self.mapping[local]), 1.0
    label = ids[0] if probs.sum() > 0 else -1
    return np.int32(label), ids, probs.astype(np.float32)


def _text(value):
  return value.decode() if isinstance(value, bytes) else str(value)


def label_top_k(config):
  """How many classes each target holds: 5 for the teacher's soft labels, else 1."""
  return 5 if config.data.get('labels', 'source') == 'teacher_soft' else 1


def source_specs(config):
  """({name: spec} of training sources, {name: spec} of validation sources).

  A spec is a ConfigDict with folder, weight, holdout, teacher_labels and
  folder_labels (whether its sub-folders name classes); the holdout photos of a
  source form the validation set 'holdout/<name>'.
  """
  data = config.data
  config_checks.check_data(data)
  if data.source == 'folder':
    train = {'train': _spec(data.folder, teacher_labels=data.get('teacher_labels', ''))}
  else:
    train = {name: _spec(**data.sources[name]) for name in sorted(data.sources)}
  val = {}
  if data.val_folder:
    val['val'] = _spec(data.val_folder, teacher_labels=data.get('val_teacher_labels', ''))
  return train, val


def _spec(folder, weight=1.0, holdout=0, teacher_labels='', folder_labels=True):
  folder = os.path.abspath(os.path.expanduser(folder))
  teacher_labels = os.path.expanduser(teacher_labels) or os.path.join(folder, teacher.LABELS_FILE)
  return ml_collections.ConfigDict(dict(folder=folder, weight=float(weight), holdout=int(holdout),
                                        teacher_labels=teacher_labels,
                                        folder_labels=bool(folder_labels)))


def folder_classes(spec):
  """A mix source's own class names: its sub-folders, unless they are not labels."""
  return folder_lib.class_names(spec.folder) if spec.folder_labels else ()


def class_names(config):
  """The label names the data will have, without building anything; () = no labels."""
  config_checks.check_data(config.data)
  labels = config.data.get('labels', 'source')
  if labels == 'none':
    return ()
  if config.data.source == 'places365':
    return places365.class_names()
  train, _ = source_specs(config)
  if labels == 'source':
    if config.data.source == 'folder':
      return folder_lib.class_names(train['train'].folder)
    return tuple(f'{name}/{label}' for name, spec in train.items()
                 for label in folder_classes(spec))
  return _teacher_labels(train)[1]  # 'teacher' or 'teacher_soft'



@functools.lru_cache(maxsize=16)
def _read_teacher_file(path):
  return teacher.read_labels(path)


def _teacher_labels(specs, required=True):
  """({name: {path: (ids, probs)}}, class names) of the sources' teacher label files.

  Sources without a file are left out when not `required` (validation sets);
  training sources have theirs (config_checks.check_data).
  """
  tables, names = {}, None
  for name, spec in specs.items():
    if not required and not os.path.isfile(spec.teacher_labels):
      logging.warning('%s: no teacher labels; %r is scored without them',
                      spec.teacher_labels, name)
      continue
    tables[name], file_names = _read_teacher_file(spec.teacher_labels)
    if names not in (None, file_names):
      raise ValueError(f'{spec.teacher_labels}: its teacher has other classes than the '
                       'other sources\' label files.')
    names = file_names
  return tables, names


def targets(config, train, val, names):
  """{part name: Targets} for the training sources, their holdouts and the val sets."""
  labels = config.data.get('labels', 'source')
  holdouts = {f'holdout/{n}': n for n, spec in train.items() if spec.holdout}
  if labels in ('teacher', 'teacher_soft'):
    tables = {**_teacher_labels(train)[0], **_teacher_labels(val, required=False)[0]}
    tables.update({h: tables[n] for h, n in holdouts.items()})
    return {n: Targets('teacher', label_top_k(config), teacher=tables[n]) if n in tables
            else Targets('none') for n in [*train, *holdouts, *val]}
  if labels == 'none':
    return {n: Targets('none') for n in [*train, *holdouts, *val]}
  if config.data.source != 'mix':  # stored labels already index `names`
    return {n: Targets('source') for n in [*train, *val]}
  mapping = {n: np.array([names.index(f'{n}/{label}') for label in folder_classes(spec)],
                          np.int32) for n, spec in train.items()}
  mapping.update({h: mapping[n] for h, n in holdouts.items()})
  # The val folders' own sub-folders name none of the sources' classes.
  return {**{n: Targets('source', mapping=m) for n, m in mapping.items()},
          **{n: Targets('none') for n in val}}
