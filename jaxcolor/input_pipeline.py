"""Training and evaluation batches: TFDS array_record data read by grain, no TensorFlow.

  train_source, val_source, info = build_datasets(config)  # builds once, then reuses
  it = train_iterator(train_source, config)   # infinite; it.get_state() / set_state()
  batch = next(it)  # {'l': BxSxSx1, 'ab': BxSxSx2 float32 in [0, 1], 'label': B int32}
  for batch in eval_batches(val_source, config): ...  # one finite pass

B is the per-host batch (config.batch_size / number of hosts) and S is
config.data.crop_size. Each host reads a disjoint shard of the data
(jax.process_index() of jax.process_count(); tests pass shard_index/count).
label is -1 for data without labels. To checkpoint the training iterator with
orbax, save grain.checkpoint.CheckpointSave(it) and restore with
grain.checkpoint.CheckpointRestore(it) (one JSON file per process).
"""
import dataclasses
import functools
import os

from absl import flags
from absl import logging
import grain
import jax
from jax.experimental import multihost_utils
import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

from jaxcolor import color
from jaxcolor.datasets import folder as folder_lib
from jaxcolor.datasets import photos
from jaxcolor.datasets import places365

_READ_THREADS = 8  # per process: PIL decoding and numpy colour maths release the GIL


@dataclasses.dataclass(frozen=True)
class DataInfo:
  """What training needs to know about the data."""
  class_names: tuple  # () when the data has no labels
  num_train: int
  num_val: int        # 0 when there is no validation data
  skipped: dict       # {'train': {'greyscale': n, 'unreadable': m, ...}, 'val': {...}}

  @property
  def num_classes(self):
    return len(self.class_names)


def class_names(config):
  """The label names the data will have, without building anything; () = no labels."""
  if config.data.source == 'places365':
    return places365.class_names()
  if config.data.source == 'folder':
    if not config.data.get('folder_labels', False):
      return ()
    return folder_lib.class_names(os.path.expanduser(config.data.folder))
  raise ValueError(f'Unknown config.data.source {config.data.source!r}.')


def build_datasets(config):
  """Builds the data the first time, then opens it: (train source, val source or None, DataInfo).

  The sources are random-access sequences of decoded examples (image uint8 HxWx3).
  """
  tfds_dir = os.path.abspath(os.path.expanduser(config.data.tfds_dir))
  manual_dir = os.path.abspath(os.path.expanduser(config.data.manual_dir or
                                                   os.path.join(tfds_dir, 'downloads', 'manual')))
  splits = _prepared_builders(config, tfds_dir, manual_dir)
  sources = {k: b.as_data_source(split) for k, (b, split) in splits.items()}
  builder = splits['train'][0]
  names = tuple(builder.info.features['label'].names) if 'label' in builder.info.features else ()
  info = DataInfo(class_names=names, num_train=len(sources['train']),
                  num_val=len(sources['val']) if 'val' in sources else 0,
                  skipped={k: _skipped(b, split) for k, (b, split) in splits.items()})
  logging.info('Data: %d train, %d val photos, %d classes; skipped %s',
               info.num_train, info.num_val, info.num_classes, info.skipped)
  return sources['train'], sources.get('val'), info


def _builders(config, tfds_dir):
  """{'train': (builder, split), 'val': (builder, split)} for config.data.source."""
  data = config.data
  if data.source == 'places365':
    builder = places365.Places365Colour(data_dir=tfds_dir, file_format='array_record')
    return {'train': (builder, 'train'), 'val': (builder, 'validation')}
  if data.source != 'folder':
    raise ValueError(f'Unknown config.data.source {data.source!r}.')
  if not data.folder:
    raise ValueError("config.data.source='folder' needs config.data.folder.")
  names = class_names(config)
  splits = {'train': (_folder_builder(config, data.folder, names, tfds_dir), 'train')}
  if data.val_folder:
    splits['val'] = (_folder_builder(config, data.val_folder, names, tfds_dir), 'train')
  return splits


def _folder_builder(config, folder, names, tfds_dir):
  """The PhotoFolder builder for one folder, labelled with names (() = no labels)."""
  builder_config = folder_lib.make_config(
      folder, class_names=names,
      max_short_side=config.data.get('folder_max_short_side', 256),
      grey_threshold=config.data.get('grey_threshold', photos.GREY_THRESHOLD))
  return folder_lib.PhotoFolder(config=builder_config, data_dir=tfds_dir,
                                file_format='array_record')


def _prepared_builders(config, tfds_dir, manual_dir):
  """{'train'|'val': (builder, tfds split)}, built where needed; process 0 builds first.

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


def _network_example(x_SxSx3, label):
  """uint8 RGB crop -> {'l': SxSx1, 'ab': SxSx2 float32 in [0, 1], 'label': int32}."""
  l_SxSx1, ab_SxSx2 = color.rgb_to_network(x_SxSx3.astype(np.float32) / 255.0)
  return {'l': l_SxSx1.astype(np.float32), 'ab': ab_SxSx2.astype(np.float32),
          'label': np.int32(label)}


def _train_example(example, rng, *, crop_size):
  """Random crop_size crop (upscaled first if smaller) and random horizontal flip."""
  x = _rgb(example)
  if min(x.shape[:2]) < crop_size:
    x = _resize_short_side(x, crop_size)
  h, w = x.shape[:2]
  top, left = rng.integers(h - crop_size + 1), rng.integers(w - crop_size + 1)
  x = x[top:top + crop_size, left:left + crop_size]
  if rng.random() < 0.5:
    x = x[:, ::-1]
  return _network_example(x, example.get('label', -1))


def _eval_example(example, *, crop_size):
  """Short side resized to crop_size, then the centre crop; no randomness."""
  x = _resize_short_side(_rgb(example), crop_size)
  top, left = (x.shape[0] - crop_size) // 2, (x.shape[1] - crop_size) // 2
  return _network_example(x[top:top + crop_size, left:left + crop_size],
                          example.get('label', -1))


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


def _mark_flags_parsed():
  """grain's worker processes read absl flags, which a program without absl.app never parsed."""
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()


def train_iterator(source, config, *, seed=None, shard_index=None, shard_count=None):
  """Infinite shuffled, augmented per-host batches: a checkpointable grain DatasetIterator.

  The same (seed, shard, config.data.num_workers) gives the same stream; each
  epoch is reshuffled. Restoring a state needs the same num_workers.
  """
  index, count = _shard(shard_index, shard_count)
  seed = config.seed if seed is None else seed
  ds = grain.MapDataset.source(source)[index::count]
  if not len(ds):
    raise ValueError(f'Shard {index} of {count} of {len(source)} examples is empty.')
  # Each shard gets its own seed so that hosts do not flip and crop in lockstep.
  shard_seed = int(np.random.SeedSequence([seed, index]).generate_state(1)[0])
  ds = ds.seed(shard_seed).shuffle().repeat()
  ds = ds.random_map(functools.partial(_train_example, crop_size=config.data.crop_size))
  batches = _batched(ds, per_host_batch_size(config, count), drop_remainder=True)
  if config.data.num_workers:
    _mark_flags_parsed()
    batches = batches.mp_prefetch(grain.MultiprocessingOptions(
        num_workers=config.data.num_workers, per_worker_buffer_size=2))
  return iter(batches)


def eval_batches(source, config, *, shard_index=None, shard_count=None, drop_remainder=False):
  """One pass over this host's shard in per-host batches; no randomness, finite.

  Shards are cut to equal sizes (dropping < shard_count examples) so that every
  host yields the same number of batches. The last batch is smaller unless
  drop_remainder.
  """
  index, count = _shard(shard_index, shard_count)
  usable = len(source) // count * count
  ds = grain.MapDataset.source(source)[:usable][index::count]
  ds = ds.map(functools.partial(_eval_example, crop_size=config.data.crop_size))
  return iter(_batched(ds, per_host_batch_size(config, count), drop_remainder))
