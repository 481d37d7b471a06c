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
config.data.global_view='photo', 'l_global' BxGxGx1 (the whole photo). For a model with
hints, 'hints' BxSxSx3 (simulated from the truth; none in validation), and
'l_global' carries them too (BxGxGx4).

Sources (config.data.source): 'places365'; 'folder' (one folder of photos);
'mix' (several folders, config.data.sources, each its own TFDS dataset sampled
by its weight, each holding out `holdout` photos as the validation set
'holdout/<name>'). Labels (config.data.labels, datasets/sources.py): 'none',
'source' (the data's own: sub-folder names or Places365 scenes), 'teacher' or
'teacher_soft' (an ImageNet classifier's top-1 or top-5 per photo, label.py).

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
import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

from jaxcolor import color
from jaxcolor import hints as hints_lib
from jaxcolor import images
from jaxcolor.training.datasets import folder as folder_lib
from jaxcolor.training.datasets import places365
from jaxcolor.training.datasets import sources

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


@dataclasses.dataclass(frozen=True)
class Part:
  """One source of photos: decoded examples, a sampling weight and its targets."""
  name: str
  source: Sequence
  weight: float = 1.0
  targets: sources.Targets = dataclasses.field(default_factory=sources.Targets)


def _as_part(data):
  """A Part, or a plain sequence of examples (their own labels) as one."""
  return data if isinstance(data, Part) else Part('data', data)


def build_datasets(config):
  """Builds the data the first time, then opens it: (train parts, {name: val part}, DataInfo).

  Each part holds a random-access sequence of decoded examples (image uint8 HxWx3).
  """
  tfds_dir = os.path.abspath(os.path.expanduser(config.data.tfds_dir))
  manual_dir = os.path.abspath(os.path.expanduser(config.data.manual_dir or
                                                   os.path.join(tfds_dir, 'downloads', 'manual')))
  splits = _prepared_builders(config, tfds_dir, manual_dir)
  names = sources.class_names(config)
  if config.data.source == 'places365':
    train_names, val_names = ['train'], ['val']
    targets = {n: sources.Targets('source' if names else 'none') for n in splits}
    weights = {'train': 1.0}
  else:
    train_specs, val_specs = sources.source_specs(config)
    train_names = list(train_specs)
    val_names = [n for n in splits if n not in train_specs]
    targets = sources.targets(config, train_specs, val_specs, names)
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
  train, val = sources.source_specs(config)
  mix = config.data.source == 'mix'
  source_labels = config.data.get('labels', 'source') == 'source'
  splits, holdouts = {}, {}
  for name, spec in {**train, **val}.items():
    # A mix stores each source's own sub-folder index whatever the labels
    # (Targets maps it to the global list, and changing labels rebuilds
    # nothing); one folder and its val folder store the train folder's.
    if mix:
      names = sources.folder_classes(spec) if name in train else ()
    else:
      names = sources.class_names(config) if source_labels else ()
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
      grey_threshold=config.data.get('grey_threshold', images.GREY_THRESHOLD), holdout=holdout)
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


def _squash(x_HxW, size):
  """One plane squashed to size x size (bilinear, antialiased), as inference does."""
  resized = Image.fromarray(x_HxW.astype(np.float32)).resize((size, size),
                                                             Image.Resampling.BILINEAR)
  return np.asarray(resized, np.float32)


def _global_view(x_HxWx3, size):
  """The whole photo's L, squashed to size x size x 1 (antialiased) as inference sees it."""
  l_HxW = color.rgb_to_network(x_HxWx3.astype(np.float32) / 255.0)[0][..., 0]
  return _squash(l_HxW, size)[..., None]


def _with_hints(example, planes_SxSx3, photo_shape=None, at=(0, 0)):
  """Adds the crop's hint planes; with a whole-photo view, the same hints where
  the crop lies in the photo (photo_shape, `at` = the crop's top left) join it."""
  example['hints'] = planes_SxSx3
  if 'l_global' in example:
    canvas = np.zeros(photo_shape + (planes_SxSx3.shape[-1],), np.float32)
    size = planes_SxSx3.shape[0]
    canvas[at[0]:at[0] + size, at[1]:at[1] + size] = planes_SxSx3
    g = example['l_global'].shape[0]
    example['l_global'] = np.concatenate(
        [example['l_global'], np.stack([_squash(c, g) for c in canvas.transpose(2, 0, 1)], -1)],
        axis=-1)
  return example


def _train_example(example, rng, *, crop_size, targets, global_size=0, hints=None):
  """Random horizontal flip, then a random crop_size crop (upscaled first if smaller).

  With global_size, 'l_global' is the whole (flipped) photo at global_size:
  the global path sees the photo, as at inference, while the loss is on the crop.
  With `hints` (p, max_side), hints simulated from the crop's true colours
  (hints_lib.simulate) become 'hints' planes, and join the whole-photo view.
  """
  x = _rgb(example)
  if rng.random() < 0.5:
    x = x[:, ::-1]
  l_global = _global_view(x, global_size) if global_size else None
  if min(x.shape[:2]) < crop_size:
    x = _resize_short_side(x, crop_size)
  h, w = x.shape[:2]
  top, left = rng.integers(h - crop_size + 1), rng.integers(w - crop_size + 1)
  out = _network_example(x[top:top + crop_size, left:left + crop_size], targets(example),
                         l_global)
  if hints is None:
    return out
  p, max_side = hints
  ab_SxSx2 = color.denormalize_ab(out['ab'])
  chosen = hints_lib.simulate(ab_SxSx2, rng, p=p, max_side=max_side)
  return _with_hints(out, hints_lib.rasterize(chosen, crop_size, crop_size), (h, w), (top, left))


def _eval_example(example, *, crop_size, targets, global_size=0, hints=None):
  """Short side resized to crop_size, then the centre crop; no randomness (and
  no hints: validation measures the model on its own)."""
  x = _rgb(example)
  l_global = _global_view(x, global_size) if global_size else None
  x = _resize_short_side(x, crop_size)
  top, left = (x.shape[0] - crop_size) // 2, (x.shape[1] - crop_size) // 2
  out = _network_example(x[top:top + crop_size, left:left + crop_size], targets(example),
                         l_global)
  if hints is None:
    return out
  empty = np.zeros((crop_size, crop_size, hints_lib.NUM_PLANES), np.float32)
  return _with_hints(out, empty, x.shape[:2], (top, left))


def _example_options(config, part):
  """Keyword arguments of _train_example / _eval_example for one part."""
  view = config.data.get('global_view', 'crop')
  if view not in ('crop', 'photo'):
    raise ValueError(f"Unknown config.data.global_view {view!r} ('crop' or 'photo').")
  hints = None
  if config.model.get('hints', False):
    hints = (config.data.get('hints_p', 1 / 8), config.data.get('hints_max_side', 9))
  return dict(crop_size=config.data.crop_size, targets=part.targets,
              global_size=config.model.global_size if view == 'photo' else 0, hints=hints)


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
