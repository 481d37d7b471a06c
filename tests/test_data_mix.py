"""Several photo sources mixed by weight, their labels (own, teacher hard / soft), holdout
and resume: real folders of generated photos, real TFDS builds, real orbax checkpoints."""
import collections
import hashlib

import grain
import numpy as np
import optax
import orbax.checkpoint as ocp
from PIL import Image
import pytest

from configs import tiny
from jaxcolor import teacher
from jaxcolor.training import config_checks
from jaxcolor.training.datasets import folder as folder_lib
from jaxcolor.training import input_pipeline
from jaxcolor.training import train_step as step_lib

from conftest import data_config
from conftest import photo

CROP = 32
# source -> {sub-folder: number of photos}; each source has its own tint, its
# teacher file gives all its photos one class (its index here): batches tell
# where each example came from.
SOURCES = {'a': {'x': 6, 'y': 6}, 'b': {'z': 5, folder_lib.UNLABELLED: 5}, 'c': {'': 8}}
TINTS = {'a': (1.0, 0.6, 0.6), 'b': (0.6, 1.0, 0.6), 'c': (0.6, 0.6, 1.0)}
TEACHER_CLASSES = ('class0', 'class1', 'class2', 'class3', 'class4', 'class5')


def _write_teacher_file(folder, source_index):
  """A labels file whose top-5 for every photo starts with class source_index."""
  files = folder_lib.list_photos(folder)
  classes = [source_index] + [c for c in range(len(TEACHER_CLASSES)) if c != source_index][:4]
  rows = ''.join(f'{p}\t{",".join(map(str, classes))}\t0.5,0.2,0.1,0.1,0.05\n' for p in files)
  (folder / 'teacher_labels.classes.txt').write_text('\n'.join(TEACHER_CLASSES) + '\n')
  (folder / teacher.LABELS_FILE).write_text(
      '# classes: teacher_labels.classes.txt\npath\tclasses\tprobabilities\n' + rows)


@pytest.fixture(scope='module')
def sources(tmp_path_factory):
  root = tmp_path_factory.mktemp('sources')
  names = ('astronaut', 'coffee', 'chelsea', 'rocket')
  for index, (source, subfolders) in enumerate(SOURCES.items()):
    for sub, count in subfolders.items():
      (root / source / sub).mkdir(parents=True, exist_ok=True)
      for i in range(count):
        x = photo(names[i % 4])[20 * i:20 * i + 60, 30 * i:30 * i + 60] * np.array(TINTS[source])
        Image.fromarray(x.astype(np.uint8)).save(root / source / sub / f'{sub}{i}.png')
    _write_teacher_file(root / source, index)
  return root


def _config(root, tfds_dir, labels='none', weights=(0.6, 0.3, 0.1), holdout=2, **data):
  sources = {name: {'folder': str(root / name), 'weight': weight, 'holdout': holdout,
                    'teacher_labels': ''} for name, weight in zip(SOURCES, weights)}
  return data_config(tfds_dir, CROP, 10, source='mix', labels=labels, val_folder='',
                     sources=sources, **data)


@pytest.fixture(scope='module')
def tfds_dir(tmp_path_factory):
  return tmp_path_factory.mktemp('tfds')


def _batches(config, n, **kwargs):
  parts, val, info = input_pipeline.build_datasets(config)
  iterator = input_pipeline.train_iterator(parts, config, shard_index=0, shard_count=1, **kwargs)
  return [next(iterator) for _ in range(n)], parts, val, info


def test_sources_are_drawn_in_proportion_to_their_weights(sources, tfds_dir):
  batches, parts, val, info = _batches(_config(sources, tfds_dir, labels='teacher'), 30)
  assert [p.name for p in parts] == ['a', 'b', 'c'] and info.class_names == TEACHER_CLASSES
  counts = collections.Counter(int(label) for b in batches for label in b['label'])
  assert sum(counts.values()) == 300
  # The teacher's class is the source's index here.
  assert abs(counts[0] - 180) <= 3 and abs(counts[1] - 90) <= 3 and abs(counts[2] - 30) <= 3
  assert sorted(val) == ['holdout/a', 'holdout/b', 'holdout/c']


def test_holdout_photos_are_fixed_and_never_trained_on(sources, tfds_dir):
  _, parts, val, info = _batches(_config(sources, tfds_dir), 1)
  for part in parts:
    files = folder_lib.list_photos(sources / part.name)
    held = {e['filename'].decode() for e in val[f'holdout/{part.name}'].source}
    trained = {e['filename'].decode() for e in part.source}
    by_hash = sorted(files, key=lambda p: hashlib.sha1(p.encode()).hexdigest())[:2]
    assert held == set(by_hash) and not held & trained and held | trained == set(files)
  assert info.num_val == 6 and info.num_train == 30 - 6


def test_source_labels_name_each_source_and_skip_unlabelled(sources, tfds_dir):
  config = _config(sources, tfds_dir, labels='source', weights=(1, 1, 1))
  batches, _, _, info = _batches(config, 12)
  assert info.class_names == ('a/x', 'a/y', 'b/z')
  labels = collections.Counter(int(label) for b in batches for label in b['label'])
  # a's photos carry 0 or 1, b/z 2; b/unlabelled and c (no sub-folders) have none.
  assert set(labels) == {-1, 0, 1, 2}
  assert labels[-1] > labels[2]
  for b in batches:
    np.testing.assert_array_equal(b['label_probs'][:, 0], b['label'] >= 0)
    np.testing.assert_array_equal(b['label_ids'][b['label'] >= 0, 0], b['label'][b['label'] >= 0])


def test_teacher_soft_labels_are_the_files_top5_renormalised(sources, tfds_dir):
  batches, _, _, _ = _batches(_config(sources, tfds_dir, labels='teacher_soft'), 2)
  b = batches[0]
  assert b['label_ids'].shape == (10, 5) and b['label_probs'].dtype == np.float32
  np.testing.assert_allclose(b['label_probs'], np.tile([0.5, 0.2, 0.1, 0.1, 0.05], (10, 1)) / 0.95,
                             rtol=1e-6)
  np.testing.assert_array_equal(b['label_ids'][:, 0], b['label'])
  hard, _, _, _ = _batches(_config(sources, tfds_dir, labels='teacher'), 1)
  assert hard[0]['label_ids'].shape == (10, 1)
  np.testing.assert_array_equal(hard[0]['label_probs'], 1.0)


def test_missing_teacher_labels_say_how_to_make_them(sources, tfds_dir, tmp_path):
  config = _config(sources, tfds_dir, labels='teacher')
  config.data.sources.b.teacher_labels = str(tmp_path / 'none.tsv')
  with pytest.raises(config_checks.ConfigError,
                     match=r"sources.b.teacher_labels=.*none.tsv': no teacher labels there.*"
                           r'python label.py --folder'):
    input_pipeline.build_datasets(config)


def test_resumed_mix_continues_the_same_stream(sources, tfds_dir, tmp_path):
  config = _config(sources, tfds_dir, labels='teacher')
  parts, _, _ = input_pipeline.build_datasets(config)
  make = lambda: input_pipeline.train_iterator(parts, config, shard_index=0, shard_count=1)
  iterator = make()
  for _ in range(4):
    next(iterator)
  manager = ocp.CheckpointManager(tmp_path / 'ckpt')
  manager.save(4, args=ocp.args.Composite(data=grain.checkpoint.CheckpointSave(iterator)))
  manager.wait_until_finished()
  uninterrupted = [next(iterator) for _ in range(3)]
  restored = make()
  manager.restore(4, args=ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(restored)))
  for a, b in zip(uninterrupted, [next(restored) for _ in range(3)]):
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])
  fresh = next(make())
  assert not np.array_equal(fresh['ab'], uninterrupted[0]['ab'])


def test_photo_view_shows_the_global_path_the_whole_photo(tmp_path):
  """A photo dark on the left, bright on the right: small crops see one side, the
  whole-photo view both."""
  folder = tmp_path / 'photos'
  folder.mkdir()
  x = np.zeros((64, 128, 3), np.uint8)
  x[:, :64] = (60, 20, 10)
  x[:, 64:] = (250, 200, 150)
  Image.fromarray(x).save(folder / 'half.png')
  config = tiny.get_config()
  config.data.folder, config.data.tfds_dir = str(folder), str(tmp_path / 'tfds')
  config.data.crop_size, config.model.global_size, config.batch_size = 16, 32, 8
  config.data.global_view = 'photo'
  (part,), _, _ = input_pipeline.build_datasets(config)
  batch = next(input_pipeline.train_iterator(part, config, shard_index=0, shard_count=1))
  assert batch['l_global'].shape == (8, 32, 32, 1)
  crop_means = batch['l'].mean(axis=(1, 2, 3))
  global_means = batch['l_global'].mean(axis=(1, 2, 3))
  np.testing.assert_allclose(global_means, global_means[0], atol=1e-3)  # always the whole
  assert crop_means.min() < global_means[0] - 0.2 or crop_means.max() > global_means[0] + 0.2
  # The whole photo is flipped with the crop: some views are dark on the left, some on the right.
  left_dark = batch['l_global'][:, :, :16].mean(axis=(1, 2, 3)) < 0.5
  assert 0 < left_dark.sum() < 8


def test_soft_cross_entropy_matches_optax():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(4, 6)).astype(np.float32)
  probs = rng.dirichlet(np.ones(3), size=4).astype(np.float32)
  probs[3] = 0  # unlabelled
  ids = np.stack([rng.choice(6, 3, replace=False) for _ in range(4)]).astype(np.int32)
  batch = {'ab': np.full((4, 4, 4, 2), 0.5, np.float32), 'label': ids[:, 0],
           'label_ids': ids, 'label_probs': probs}
  sums = step_lib._loss_sums(np.full((4, 2, 2, 2), 0.5, np.float32), logits, batch, np.ones(4))
  dense = np.zeros((4, 6), np.float32)
  np.put_along_axis(dense, ids, probs, axis=1)
  expected = optax.softmax_cross_entropy(logits, dense)[:3].sum()
  np.testing.assert_allclose(float(sums['xent']), float(expected), rtol=1e-5)
  assert float(sums['labelled']) == 3
