"""TFDS builder for any folder of photos (jpg, png, ...), searched recursively.

Labels, when asked for, are the names of the folder's top-level sub-folders
(one named 'unlabelled' holds photos without a label). With `holdout=N`, a fixed
N photos (`holdout_photos`) form a 'holdout' split for validation and the
'train' split never holds them.
Greyscale and unreadable photos are skipped; how many (and the first few names)
are logged and stored in `builder.info.metadata['skipped']['train']`. Each distinct
(folder contents, options) gets its own builder config, named after a hash of
them, so a changed folder is rebuilt rather than read stale.
"""
import dataclasses
import hashlib
import json
import os

from absl import logging
import tensorflow_datasets as tfds

from jaxcolor import images
from jaxcolor.training.datasets import photos


def list_photos(folder):
  """Relative paths (with '/') of every photo under folder, found as infer.py and
  evaluate.py find them (images.find_images: recursively, hidden names left out)."""
  return [path.relative_to(folder).as_posix()
          for path in images.find_images(folder)]


UNLABELLED = 'unlabelled'


def class_names(folder):
  """Sorted names of folder's sub-folders that hold photos (except 'unlabelled'): the labels."""
  tops = {path.split('/')[0] for path in list_photos(folder) if '/' in path}
  return tuple(sorted(tops - {UNLABELLED}))


def holdout_photos(files, count):
  """The `count` files whose SHA-1 of the relative path is smallest: a fixed sample for
  a given listing, whatever the machine or the listing's order. (Adding files can move
  a held-out photo into training: rebuild and compare checkpoints only on one listing.)"""
  return set(sorted(files, key=lambda p: hashlib.sha1(p.encode()).hexdigest())[:count])


@dataclasses.dataclass
class FolderConfig(tfds.core.BuilderConfig):
  """Where the photos are and how they are stored. class_names=() means no labels."""
  folder: str = ''
  class_names: tuple = ()
  max_short_side: int = 256
  grey_threshold: float = images.GREY_THRESHOLD
  holdout: int = 0


def make_config(folder, *, class_names=(), max_short_side=256,
                grey_threshold=images.GREY_THRESHOLD, holdout=0):
  """A FolderConfig named '<folder name>_<hash of options and file list>'."""
  folder = os.path.abspath(os.path.expanduser(folder))
  if not os.path.isdir(folder):
    raise FileNotFoundError(f'Photo folder {folder!r} does not exist.')
  files = list_photos(folder)
  if not files:
    raise FileNotFoundError(f'No photos ({", ".join(sorted(images.READABLE))}) under {folder!r}.')
  # Size and mtime of every file, so that edits to the folder trigger a rebuild.
  stats = [(p, os.stat(os.path.join(folder, p))) for p in files]
  # (holdout only when set, so that folders built before it existed are reused)
  key = json.dumps([folder, list(class_names), max_short_side, grey_threshold,
                    [(p, s.st_size, s.st_mtime_ns) for p, s in stats],
                    *([holdout] if holdout else [])])
  digest = hashlib.sha1(key.encode()).hexdigest()[:12]
  stem = ''.join(c if c.isalnum() else '_' for c in os.path.basename(folder).lower())
  return FolderConfig(name=f'{stem or "root"}_{digest}', folder=folder,
                      class_names=tuple(class_names), max_short_side=max_short_side,
                      grey_threshold=grey_threshold, holdout=holdout,
                      description=f'Photos under {folder}')


class PhotoFolder(tfds.core.GeneratorBasedBuilder):
  """Photos of one folder as a 'train' split (and 'holdout'); build it with make_config()."""

  name = 'photo_folder'
  VERSION = tfds.core.Version('1.0.0')

  def _info(self):
    features = {'image': tfds.features.Image(shape=(None, None, 3), encoding_format=None),
                'filename': tfds.features.Text()}
    if self.builder_config.class_names:
      features['label'] = tfds.features.ClassLabel(names=self.builder_config.class_names)
    return tfds.core.DatasetInfo(
        builder=self, description=self.builder_config.description,
        features=tfds.features.FeaturesDict(features), metadata=tfds.core.MetadataDict())

  def _split_generators(self, dl_manager):
    del dl_manager  # everything is local
    files = list_photos(self.builder_config.folder)
    if not self.builder_config.holdout:
      return {'train': self._generate_examples('train', files)}
    held = holdout_photos(files, self.builder_config.holdout)
    return {'train': self._generate_examples('train', [p for p in files if p not in held]),
            'holdout': self._generate_examples('holdout', [p for p in files if p in held])}

  def _generate_examples(self, split, files):
    cfg = self.builder_config
    skipped = photos.SkipLog()
    for path, (data, reason) in zip(files, images.ordered_parallel_map(self._prepare, files)):
      if reason:
        skipped.add(reason, path)
        continue
      example = {'image': data, 'filename': path}
      if cfg.class_names:
        top = path.split('/')[0]
        example['label'] = cfg.class_names.index(top) if top in cfg.class_names else -1
      yield path, example
    # Runs once every example was written, before TFDS saves the info.
    self.info.metadata['folder'] = cfg.folder
    self.info.metadata.setdefault('skipped', {})[split] = skipped.as_dict()
    logging.info('%s (%s): kept %d of %d photos; skipped %d greyscale, %d unreadable.',
                 cfg.folder, split, len(files) - sum(skipped.counts.values()), len(files),
                 skipped.counts[photos.GREYSCALE], skipped.counts[photos.UNREADABLE])

  def _prepare(self, path):
    cfg = self.builder_config
    try:
      with open(os.path.join(cfg.folder, path), 'rb') as f:
        data = f.read()
    except OSError:
      return None, photos.UNREADABLE
    return photos.prepare_photo(data, max_short_side=cfg.max_short_side,
                                grey_threshold=cfg.grey_threshold)
