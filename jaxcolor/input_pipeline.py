"""Training and evaluation batches: TFDS array_record data read by grain, no TensorFlow.

  train_parts, val_parts, info = build_datasets(config)  # builds once, then reuses
  it = train_iterator(train_parts, config)   # infinite; it.get_state() / set_state()
  batch = next(it)
  for name, part in val_parts.items():
    for batch in eval_batches(part, config): ...  # one finite pass

A batch holds 'l' BxSxSx1 and 'ab' BxSxSx2 (float32 in [0, 1]), 'label' B (int32,
the top-1 class or -1 without a label), 'label_ids' / 'label_probs' BxK (the
target classes and their probabilities: K=1 for hard labels, 5 for the
teacher's soft ones; all-zero probabilities without a label) and, with
config.data.global_view='photo', 'l_global' BxGxGx1 (the whole photo).

Sources (config.data.source): 'places365'; 'folder' (one folder of photos);
'mix' (several folders, config.data.sources, each its own TFDS dataset sampled
by its weight, each holding out `holdout` photos as the validation set
'holdout/<name>'). Labels (config.data.labels): 'none', 'source' (the data's
own: sub-folder names or Places365 scenes), 'teacher' or 'teacher_soft' (an
ImageNet classifier's top-1 or top-5 per photo, made by label.py).

B is the per-host batch (config.batch_size / number of hosts) and S is
config.data.crop_size. Each host reads a disjoint shard of the data
(jax.process_index() of jax.process_count(); tests pass shard_index/count).
To checkpoint the training iterator with orbax, save
grain.checkpoint.CheckpointSave(it) and restore with
grain.checkpoint.CheckpointRestore(it) (one JSON file per process).
"""
import dataclasses
import functools
import hashlib
import os
from typing import Sequence

from absl import flags
from absl import logging
import grain
import jax
from jax.experimental import multihost_utils
import ml_collections
import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

from jaxcolor import color
from jaxcolor.datasets import folder as folder_lib
from jaxcolor.datasets import photos
from jaxcolor.datasets import places365
from jaxcolor.datasets import teacher

_READ_THREADS = 8  # per process: PIL decoding and numpy colour maths release the GIL


@dataclasses.dataclass(frozen=True)
class DataInfo:
  """What training needs to know about the data."""
  class_names: tuple  # () when the data has no labels
  num_train: int
  num_val: int        # over every validation set; 0 when there is none
  skipped: dict       # {part name: {'greyscale': n, 'unreadable': m, ...}}

  @property
  def num_classes(self):
    return len(self.class_names)


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


@dataclasses.dataclass(frozen=True)
class Part:
  """One source of photos: decoded examples, a sampling weight and its targets."""
  name: str
  source: Sequence
  weight: float = 1.0
  targets: Targets = dataclasses.field(default_factory=Targets)


def _as_part(data):
  """A Part, or a plain sequence of examples (their own labels) as one."""
  return data if isinstance(data, Part) else Part('data', data)


def label_top_k(config):
  """How many classes each target holds: 5 for the teacher's soft labels, else 1."""
  return 5 if config.data.get('labels', 'source') == 'teacher_soft' else 1


def _source_specs(config):
  """({name: spec} of training sources, {name: spec} of validation sources).

  A spec is a ConfigDict with folder, weight, holdout, teacher_labels and
  folder_labels (whether its sub-folders name classes); the holdout photos of a
  source form the validation set 'holdout/<name>'.
  """
  data = config.data
  if data.source == 'folder':
    if not data.folder:
      raise ValueError("config.data.source='folder' needs config.data.folder.")
    train = {'train': _spec(data.folder, teacher_labels=data.get('teacher_labels', ''))}
  elif data.source == 'mix':
    if not data.get('sources'):
      raise ValueError("config.data.source='mix' needs config.data.sources.")
    train = {name: _spec(**data.sources[name]) for name in sorted(data.sources)}
  else:
    raise ValueError(f'Unknown config.data.source {data.source!r}.')
  val = {}
  if data.val_folder:
    val['val'] = _spec(data.val_folder, teacher_labels=data.get('val_teacher_labels', ''))
  return train, val


def _spec(folder, weight=1.0, holdout=0, teacher_labels='', folder_labels=True):
  folder = os.path.abspath(os.path.expanduser(folder))
  teacher_labels = teacher_labels or os.path.join(folder, teacher.LABELS_FILE)
  return ml_collections.ConfigDict(dict(folder=folder, weight=float(weight), holdout=int(holdout),
                                        teacher_labels=teacher_labels,
                                        folder_labels=bool(folder_labels)))


def _folder_classes(spec):
  """A mix source's own class names: its sub-folders, unless they are not labels."""
  return folder_lib.class_names(spec.folder) if spec.folder_labels else ()


def class_names(config):
  """The label names the data will have, without building anything; () = no labels."""
  labels = config.data.get('labels', 'source')
  if labels == 'none':
    return ()
  if config.data.source == 'places365':
    if labels != 'source':
      raise ValueError(f"config.data.labels={labels!r}: Places365 has only 'source' labels.")
    return places365.class_names()
  train, _ = _source_specs(config)
  if labels == 'source':
    if config.data.source == 'folder':
      return folder_lib.class_names(train['train'].folder)
    return tuple(f'{name}/{label}' for name, spec in train.items()
                 for label in _folder_classes(spec))
  if labels in ('teacher', 'teacher_soft'):
    return _teacher_labels(train)[1]
  raise ValueError(f"Unknown config.data.labels {labels!r} "
                   "(none, source, teacher or teacher_soft).")


@functools.lru_cache(maxsize=16)
def _read_teacher_file(path):
  return teacher.read_labels(path)


def _teacher_labels(specs, required=True):
  """({name: {path: (ids, probs)}}, class names) of the sources' teacher label files.

  Sources without a file are left out when not `required` (validation sets).
  """
  tables, names = {}, None
  for name, spec in specs.items():
    if not os.path.isfile(spec.teacher_labels):
      if not required:
        logging.warning('%s: no teacher labels; %r is scored without them',
                        spec.teacher_labels, name)
        continue
      raise FileNotFoundError(
          f'{spec.teacher_labels}: no teacher labels for source {name!r}. Make them with '
          f'`python label.py --folder {spec.folder} --teacher MODEL_DIR '
          f'--output {spec.teacher_labels}`.')
    tables[name], file_names = _read_teacher_file(spec.teacher_labels)
    if names not in (None, file_names):
      raise ValueError(f'{spec.teacher_labels}: its teacher has other classes than the '
                       'other sources\' label files.')
    names = file_names
  return tables, names


def _targets(config, train, val, names):
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
  mapping = {n: np.array([names.index(f'{n}/{label}') for label in _folder_classes(spec)],
                          np.int32) for n, spec in train.items()}
  mapping.update({h: mapping[n] for h, n in holdouts.items()})
  # The val folders' own sub-folders name none of the sources' classes.
  return {**{n: Targets('source', mapping=m) for n, m in mapping.items()},
          **{n: Targets('none') for n in val}}


def build_datasets(config):
  """Builds the data the first time, then opens it: (train parts, {name: val part}, DataInfo).

  Each part holds a random-access sequence of decoded examples (image uint8 HxWx3).
  """
  tfds_dir = os.path.abspath(os.path.expanduser(config.data.tfds_dir))
  manual_dir = os.path.abspath(os.path.expanduser(config.data.manual_dir or
                                                   os.path.join(tfds_dir, 'downloads', 'manual')))
  splits = _prepared_builders(config, tfds_dir, manual_dir)
  names = class_names(config)
  if config.data.source == 'places365':
    train_names, val_names = ['train'], ['val']
    targets = {n: Targets('source' if names else 'none') for n in splits}
    weights = {'train': 1.0}
  else:
    train_specs, val_specs = _source_specs(config)
    train_names = list(train_specs)
    val_names = [n for n in splits if n not in train_specs]
    targets = _targets(config, train_specs, val_specs, names)
    weights = {n: s.weight for n, s in train_specs.items()}
  parts = {n: Part(n, b.as_data_source(split), weights.get(n, 1.0), targets[n])
           for n, (b, split) in splits.items()}
  for n in [n for n in val_names if len(parts[n].source) < jax.process_count()]:
    logging.warning('Validation set %r has %d photos: too few to score; left out.', n,
                    len(parts[n].source))
    val_names.remove(n)
  info = DataInfo(class_names=names, num_train=sum(len(parts[n].source) for n in train_names),
                  num_val=sum(len(parts[n].source) for n in val_names),
                  skipped={n: _skipped(b, split) for n, (b, split) in splits.items()})
  logging.info('Data: %d train, %d val photos, %d classes; skipped %s',
               info.num_train, info.num_val, info.num_classes, info.skipped)
  return tuple(parts[n] for n in train_names), {n: parts[n] for n in val_names}, info


def _builders(config, tfds_dir):
  """{part name: (builder, split)} for config.data.source; validation parts last."""
  if config.data.source == 'places365':
    builder = places365.Places365Colour(data_dir=tfds_dir, file_format='array_record')
    return {'train': (builder, 'train'), 'val': (builder, 'validation')}
  train, val = _source_specs(config)
  mix = config.data.source == 'mix'
  source_labels = config.data.get('labels', 'source') == 'source'
  splits, holdouts = {}, {}
  for name, spec in {**train, **val}.items():
    # A mix stores each source's own sub-folder index whatever the labels
    # (Targets maps it to the global list, and changing labels rebuilds
    # nothing); one folder and its val folder store the train folder's.
    if mix:
      names = _folder_classes(spec) if name in train else ()
    else:
      names = class_names(config) if source_labels else ()
    builder = _folder_builder(config, spec.folder, names, tfds_dir,
                              holdout=spec.holdout if mix else 0)
    splits[name] = (builder, 'train')
    if spec.holdout and mix and name in train:
      holdouts[f'holdout/{name}'] = (builder, 'holdout')
  return {**splits, **holdouts}


def _folder_builder(config, folder, names, tfds_dir, holdout=0):
  """The PhotoFolder builder for one folder, labelled with names (() = no labels)."""
  builder_config = folder_lib.make_config(
      folder, class_names=names,
      max_short_side=config.data.get('folder_max_short_side', 256),
      grey_threshold=config.data.get('grey_threshold', photos.GREY_THRESHOLD), holdout=holdout)
  return folder_lib.PhotoFolder(config=builder_config, data_dir=tfds_dir,
                                file_format='array_record')


def _prepared_builders(config, tfds_dir, manual_dir):
  """{part name: (builder, tfds split)}, built where needed; process 0 builds first.

  Hosts sharing tfds_dir then find the data ready; hosts with their own disk
  build their own copy. Every host must call this (it holds a barrier).
  """
  if jax.process_count() > 1:
    if jax.process_index() == 0:
      _prepare(_builders(config, tfds_dir), manual_dir)
    multihost_utils.sync_global_devices('jaxcolor: data built')
  # Made after the barrier, so that they read the info process 0 wrote.
  splits = _builders(config, tfds_dir)
  _prepare(splits, manual_dir)  # only logs "reusing" where the data is ready
  return splits


def _prepare(splits, manual_dir):
  """download_and_prepare (array_record) each distinct builder in splits."""
  download_config = tfds.download.DownloadConfig(manual_dir=manual_dir)
  for builder in dict.fromkeys(b for b, _ in splits.values()):
    builder.download_and_prepare(file_format='array_record', download_config=download_config)


def _skipped(builder, split):
  """The builder's skip counts for split, as stored at build time ({} if none)."""
  return (builder.info.metadata or {}).get('skipped', {}).get(split, {})


# Per-example transforms, run in grain's threads and worker processes.


def _rgb(example):
  """Decoded TFDS example -> uint8 HxWx3 RGB array."""
  x = np.asarray(example['image'])
  x = x[..., None] if x.ndim == 2 else x
  return np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x[..., :3]


def _resize_short_side(x_HxWx3, size):
  """Resizes (bicubic) so that the short side is exactly size."""
  h, w = x_HxWx3.shape[:2]
  scale = size / min(h, w)
  new_wh = (max(size, round(w * scale)), max(size, round(h * scale)))
  return np.asarray(Image.fromarray(x_HxWx3).resize(new_wh, Image.Resampling.BICUBIC))


def _network_example(x_SxSx3, targets, l_global=None):
  """uint8 RGB crop -> {'l': SxSx1, 'ab': SxSx2 float32 in [0, 1], 'label': int32,
  'label_ids', 'label_probs': K} (+ 'l_global': GxGx1 when given)."""
  l_SxSx1, ab_SxSx2 = color.rgb_to_network(x_SxSx3.astype(np.float32) / 255.0)
  label, ids, probs = targets
  example = {'l': l_SxSx1.astype(np.float32), 'ab': ab_SxSx2.astype(np.float32),
             'label': label, 'label_ids': ids, 'label_probs': probs}
  if l_global is not None:
    example['l_global'] = l_global
  return example


def _global_view(x_HxWx3, size):
  """The whole photo's L, squashed to size x size (antialiased) as inference sees it."""
  l_HxW = color.rgb_to_network(x_HxWx3.astype(np.float32) / 255.0)[0][..., 0]
  resized = Image.fromarray(l_HxW.astype(np.float32)).resize((size, size),
                                                             Image.Resampling.BILINEAR)
  return np.asarray(resized, np.float32)[..., None]


def _train_example(example, rng, *, crop_size, targets, global_size=0):
  """Random horizontal flip, then a random crop_size crop (upscaled first if smaller).

  With global_size, 'l_global' is the whole (flipped) photo at global_size:
  the global path sees the photo, as at inference, while the loss is on the crop.
  """
  x = _rgb(example)
  if rng.random() < 0.5:
    x = x[:, ::-1]
  l_global = _global_view(x, global_size) if global_size else None
  if min(x.shape[:2]) < crop_size:
    x = _resize_short_side(x, crop_size)
  h, w = x.shape[:2]
  top, left = rng.integers(h - crop_size + 1), rng.integers(w - crop_size + 1)
  return _network_example(x[top:top + crop_size, left:left + crop_size], targets(example),
                          l_global)


def _eval_example(example, *, crop_size, targets, global_size=0):
  """Short side resized to crop_size, then the centre crop; no randomness."""
  x = _rgb(example)
  l_global = _global_view(x, global_size) if global_size else None
  x = _resize_short_side(x, crop_size)
  top, left = (x.shape[0] - crop_size) // 2, (x.shape[1] - crop_size) // 2
  return _network_example(x[top:top + crop_size, left:left + crop_size], targets(example),
                          l_global)


def _example_options(config, part):
  """Keyword arguments of _train_example / _eval_example for one part."""
  view = config.data.get('global_view', 'crop')
  if view not in ('crop', 'photo'):
    raise ValueError(f"Unknown config.data.global_view {view!r} ('crop' or 'photo').")
  return dict(crop_size=config.data.crop_size, targets=part.targets,
              global_size=config.model.global_size if view == 'photo' else 0)


# Iterators.


def _shard(shard_index, shard_count):
  """(index, count) defaulting to this host's place among jax processes."""
  index = jax.process_index() if shard_index is None else shard_index
  count = jax.process_count() if shard_count is None else shard_count
  if not 0 <= index < count:
    raise ValueError(f'shard_index {index} is not in [0, {count}).')
  return index, count


def per_host_batch_size(config, shard_count=None):
  """config.batch_size (global) split over shard_count hosts (default: jax processes)."""
  count = jax.process_count() if shard_count is None else shard_count
  if config.batch_size % count:
    raise ValueError(f'batch_size {config.batch_size} does not split over {count} hosts.')
  return config.batch_size // count


def _batched(ds, batch_size, drop_remainder):
  """Per-example MapDataset -> IterDataset of stacked batches, decoded in threads."""
  # A bounded buffer of examples (not batches), so memory stays small.
  read = grain.ReadOptions(num_threads=_READ_THREADS,
                           prefetch_buffer_size=max(2 * batch_size, 16))
  return ds.to_iter_dataset(read).batch(batch_size, drop_remainder=drop_remainder)


def _let_grain_read_its_profiling_flag():
  """Starting worker processes, grain reads --grain_enable_multiprocess_worker_profiling,
  which fails where absl flags were never parsed (a program without absl.app).
  Marking that one flag given makes its default readable, as grain does in its
  workers, and leaves every other flag and the parsed state as they are."""
  name = 'grain_enable_multiprocess_worker_profiling'
  if not flags.FLAGS.is_parsed() and name in flags.FLAGS:
    flags.FLAGS[name].present = True


def _parts(data):
  """A tuple of Parts from Parts, one Part, or a plain sequence of examples."""
  if isinstance(data, (tuple, list)) and data and all(isinstance(p, Part) for p in data):
    return tuple(data)
  return (_as_part(data),)


def train_iterator(data, config, *, seed=None, shard_index=None, shard_count=None):
  """Infinite shuffled, augmented per-host batches: a checkpointable grain DatasetIterator.

  `data` is build_datasets' training parts (or one sequence of examples). Each
  part is sharded, shuffled and repeated on its own, then the parts are mixed
  in proportion to their weights (grain's MapDataset.mix). The same (seed,
  shard, config.data.num_workers) gives the same stream; each epoch of a part
  is reshuffled. Restoring a state needs the same num_workers.
  """
  index, count = _shard(shard_index, shard_count)
  seed = config.seed if seed is None else seed
  parts = [p for p in _parts(data) if p.weight > 0]  # weight 0: left out
  if not parts:
    raise ValueError('Every data source has weight 0.')
  streams = []
  for part in parts:
    ds = grain.MapDataset.source(part.source)[index::count]
    if not len(ds):
      raise ValueError(f'{part.name}: shard {index} of {count} of {len(part.source)} '
                       'examples is empty.')
    # Each shard and part gets its own seed (hosts do not flip and crop in
    # lockstep), from the part's name: leaving a source out keeps the others' streams.
    name_key = int.from_bytes(hashlib.sha1(part.name.encode()).digest()[:4], 'little')
    part_seed = int(np.random.SeedSequence([seed, index, name_key]).generate_state(1)[0])
    ds = ds.seed(part_seed).shuffle().repeat()
    streams.append(ds.random_map(functools.partial(_train_example,
                                                   **_example_options(config, part))))
  ds = streams[0] if len(streams) == 1 else grain.MapDataset.mix(
      streams, [p.weight for p in parts])
  batches = _batched(ds, per_host_batch_size(config, count), drop_remainder=True)
  if config.data.num_workers:
    _let_grain_read_its_profiling_flag()
    batches = batches.mp_prefetch(grain.MultiprocessingOptions(
        num_workers=config.data.num_workers, per_worker_buffer_size=2))
  return iter(batches)


def eval_batches(data, config, *, shard_index=None, shard_count=None, drop_remainder=False):
  """One pass over this host's shard of one part (or sequence) in per-host batches.

  No randomness, finite. Shards are cut to equal sizes (dropping < shard_count
  examples) so that every host yields the same number of batches. The last
  batch is smaller unless drop_remainder.
  """
  part = _as_part(data)
  index, count = _shard(shard_index, shard_count)
  usable = len(part.source) // count * count
  ds = grain.MapDataset.source(part.source)[:usable][index::count]
  ds = ds.map(functools.partial(_eval_example, **_example_options(config, part)))
  return iter(_batched(ds, per_host_batch_size(config, count), drop_remainder))
