"""TFDS builder for Places365-Standard 256x256 read from the manually downloaded tars.

TFDS's own `places365_small` downloads ~30 GB itself; this one reads the same
files (names as in TFDS's checksums.tsv) from a manual folder and, like the
folder builder, drops greyscale and unreadable photos, counting them in
`builder.info.metadata['skipped'][split]`. The unlabelled test split is not built.
Class names come from the label file shipped inside the tensorflow_datasets
package (image_classification/categories_places365.txt), so no download.
"""
import csv
import io
import os
import tarfile

from absl import logging
import tensorflow_datasets as tfds

from jaxcolor import images
from jaxcolor.training.datasets import photos

URL = 'http://data.csail.mit.edu/places/places365/'
TRAIN_TAR = 'train_256_places365standard.tar'  # members data_256/a/airfield/00000001.jpg
VAL_TAR = 'val_256.tar'                        # members val_256/Places365_val_00000001.jpg
FILELIST_TAR = 'filelist_places365-standard.tar'
REQUIRED = (TRAIN_TAR, VAL_TAR, FILELIST_TAR)
# Inside FILELIST_TAR: '<path> <label>' per line. Train paths start with '/'.
_LISTS = {'train': 'places365_train_standard.txt', 'validation': 'places365_val.txt'}
_TARS = {'train': TRAIN_TAR, 'validation': VAL_TAR}
_LABELS_FILE = 'image_classification/categories_places365.txt'

INSTRUCTIONS = f"""Download these Places365-Standard files (small images, 256x256):
  {URL}{TRAIN_TAR}   (24 GB)
  {URL}{VAL_TAR}   (501 MB)
  {URL}{FILELIST_TAR}   (64 MB)
and put them, as they are (do not extract), in the manual folder
(config.data.manual_dir; default <config.data.tfds_dir>/downloads/manual)."""


def check_manual_dir(manual_dir):
  """manual_dir as an absolute path; FileNotFoundError naming each missing Places365 tar."""
  manual_dir = os.path.abspath(os.path.expanduser(os.fspath(manual_dir)))
  missing = [f for f in REQUIRED if not os.path.isfile(os.path.join(manual_dir, f))]
  if missing:
    lines = [f'  put {f!r} (from {URL}{f}) in folder {manual_dir!r}' for f in missing]
    raise FileNotFoundError('Places365 files are missing:\n' + '\n'.join(lines) +
                            f'\n\n{INSTRUCTIONS}')
  return manual_dir


def _read_labels(filelist_tar, split):
  """{path relative to the split's image folder, no leading '/': label}."""
  with tarfile.open(filelist_tar) as tar:
    member = next((m for m in tar.getmembers()
                   if os.path.basename(m.name) == _LISTS[split]), None)
    if member is None:
      raise FileNotFoundError(f'{_LISTS[split]!r} not found inside {filelist_tar!r}.')
    text = io.TextIOWrapper(tar.extractfile(member), encoding='utf-8')
    return {row[0].lstrip('/'): int(row[1]) for row in csv.reader(text, delimiter=' ') if row}


def _iter_tar(path):
  """Yields (member name, bytes) of each file in a tar, streaming (no seeks)."""
  with tarfile.open(path, 'r|*') as tar:
    for member in tar:
      if member.isfile():
        yield member.name.replace('\\', '/'), tar.extractfile(member).read()


class Places365Colour(tfds.core.GeneratorBasedBuilder):
  """Places365-Standard small (256x256), 365 scene labels, colour photos only."""

  name = 'places365_colour'
  VERSION = tfds.core.Version('1.0.0')
  MANUAL_DOWNLOAD_INSTRUCTIONS = INSTRUCTIONS

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self,
        description='Places365-Standard 256x256 without greyscale photos.',
        features=tfds.features.FeaturesDict({
            'image': tfds.features.Image(shape=(256, 256, 3)),
            'label': tfds.features.ClassLabel(names_file=tfds.core.tfds_path(_LABELS_FILE)),
            'filename': tfds.features.Text(),
        }),
        supervised_keys=('image', 'label'),
        homepage='http://places2.csail.mit.edu/',
        metadata=tfds.core.MetadataDict())

  def _split_generators(self, dl_manager):
    # dl_manager.manual_dir only says "missing or empty"; we name each file.
    manual_dir = check_manual_dir(dl_manager._manual_dir)  # pylint: disable=protected-access
    filelist = os.path.join(manual_dir, FILELIST_TAR)
    return {split: self._generate_examples(split, os.path.join(manual_dir, tar), filelist)
            for split, tar in _TARS.items()}

  def _generate_examples(self, split, tar_path, filelist_tar):
    labels = _read_labels(filelist_tar, split)
    skipped = photos.SkipLog()
    kept = 0
    for name, (data, reason) in images.ordered_parallel_map(_prepare, _iter_tar(tar_path)):
      # 'data_256/a/airfield/1.jpg' -> 'a/airfield/1.jpg', as in the label list.
      label = labels.get(name.split('/', 1)[-1])
      reason = reason or (None if label is not None else 'unlisted')
      if reason:
        skipped.add(reason, name)
        continue
      kept += 1
      yield name, {'image': data, 'label': label, 'filename': name}
    # Runs after the split's last example, before TFDS writes the info.
    self.info.metadata.setdefault('skipped', {})[split] = skipped.as_dict()
    logging.info('places365 %s: kept %d; skipped %s', split, kept, dict(skipped.counts))


def _prepare(item):
  """(name, bytes) -> (name, prepare_photo's result); 256x256 photos stay as they are."""
  name, data = item
  return name, photos.prepare_photo(data)


def class_names():
  """The 365 scene names, in label order, from the tensorflow_datasets package."""
  return tuple(tfds.core.tfds_path(_LABELS_FILE).read_text().split())
