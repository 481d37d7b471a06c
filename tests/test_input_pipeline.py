"""The data pipeline on real image files made from scikit-image's bundled photos."""
import io
import sys
import tarfile

import grain
import numpy as np
import orbax.checkpoint as ocp
from PIL import Image
import pytest
from skimage import data as skdata
import tensorflow_datasets as tfds

from jaxcolor.training.datasets import photos
from jaxcolor.training.datasets import sources
from jaxcolor.training import input_pipeline

from conftest import data_config

CROP = 32
CLASSES = ('cats', 'people', 'things')


def _photo(name, size=96):
  """A bundled colour photo, resized so its short side is size; uint8 HxWx3."""
  image = Image.fromarray(getattr(skdata, name)()[..., :3])
  scale = size / min(image.size)
  return image.resize((round(image.width * scale), round(image.height * scale)))


def _jpeg_bytes(image, **kwargs):
  out = io.BytesIO()
  image.save(out, format='JPEG', **kwargs)
  return out.getvalue()


def _config(tfds_dir, **data):
  return data_config(tfds_dir, CROP, 4, **data)


@pytest.fixture(scope='module')
def photo_dir(tmp_path_factory):
  """8 colour photos in 3 class folders, plus 2 greyscale and 2 broken files."""
  root = tmp_path_factory.mktemp('photos')
  for cls in CLASSES:
    (root / cls).mkdir()
  _photo('chelsea').save(root / 'cats' / 'chelsea.jpg')
  _photo('chelsea').crop((10, 0, 90, 60)).save(root / 'cats' / 'chelsea_crop.png')
  _photo('chelsea', size=20).save(root / 'cats' / 'chelsea_tiny.jpg')  # smaller than CROP
  _photo('astronaut', size=200).save(root / 'people' / 'astronaut.jpg')  # downscaled when built
  _photo('astronaut').transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(root / 'people' / 'flip.jpg')
  _photo('coffee').save(root / 'things' / 'coffee.jpg')
  _photo('rocket').save(root / 'things' / 'rocket.png')
  _photo('rocket').crop((0, 0, 70, 70)).save(root / 'things' / 'rocket_crop.jpg')
  _photo('coffee').convert('L').save(root / 'things' / 'grey.jpg')
  _photo('chelsea').convert('L').convert('RGB').save(root / 'people' / 'grey_rgb.png')
  (root / 'things' / 'garbage.jpg').write_bytes(b'not an image at all')
  (root / 'people' / 'truncated.jpg').write_bytes(_jpeg_bytes(_photo('coffee'))[:1500])
  (root / 'people' / 'notes.txt').write_text('not a photo: ignored')
  return root


@pytest.fixture(scope='module')
def folder_data(photo_dir, tmp_path_factory):
  """The folder dataset, built once: (config, train source, val source, info)."""
  config = _config(tmp_path_factory.mktemp('tfds'), folder=str(photo_dir),
                   labels='source', folder_max_short_side=64)
  train, val, info = input_pipeline.build_datasets(config)
  return config, train[0], val, info


def _take(iterator, n):
  return [next(iterator) for _ in range(n)]


def _assert_same(batches_a, batches_b):
  assert len(batches_a) == len(batches_b)
  for a, b in zip(batches_a, batches_b):
    for key in ('l', 'ab', 'label'):
      np.testing.assert_array_equal(a[key], b[key])


def test_folder_build_skips_greyscale_and_broken(folder_data):
  _, train, val, info = folder_data
  assert val == {}
  assert info.num_train == len(train.source) == 8
  assert info.skipped['train'][photos.GREYSCALE] == 2
  assert info.skipped['train'][photos.UNREADABLE] == 2
  assert sorted(info.skipped['train']['examples'][photos.UNREADABLE]) == [
      'people/truncated.jpg', 'things/garbage.jpg']
  assert 'tensorflow' not in sys.modules  # built and read without TensorFlow
  _, _, reopened = input_pipeline.build_datasets(folder_data[0])  # reads what was built
  assert reopened == info


def test_folder_labels_and_stored_sizes(folder_data):
  _, train, _, info = folder_data
  assert info.class_names == CLASSES and info.num_classes == 3
  for example in train.source:
    assert example['label'] == CLASSES.index(example['filename'].decode().split('/')[0])
    image = example['image']
    assert image.dtype == np.uint8 and image.shape[-1] == 3
    assert min(image.shape[:2]) <= 64  # stored downscaled
  assert sources.class_names(_config('.', folder=folder_data[0].data.folder,
                                   labels='source')) == CLASSES


def test_folder_without_labels(photo_dir, tmp_path):
  config = _config(tmp_path, folder=str(photo_dir), folder_max_short_side=64)
  train, _, info = input_pipeline.build_datasets(config)
  assert info.class_names == () and 'label' not in train[0].source[0]
  batch = next(input_pipeline.train_iterator(train, config, shard_index=0, shard_count=1))
  np.testing.assert_array_equal(batch['label'], -1)


def test_train_batches_shapes_and_ranges(folder_data):
  config, train, _, _ = folder_data
  iterator = input_pipeline.train_iterator(train, config, shard_index=0, shard_count=1)
  for batch in _take(iterator, 5):  # 20 examples: more than one epoch
    assert batch['l'].shape == (4, CROP, CROP, 1) and batch['l'].dtype == np.float32
    assert batch['ab'].shape == (4, CROP, CROP, 2) and batch['ab'].dtype == np.float32
    assert batch['label'].shape == (4,) and batch['label'].dtype == np.int32
    assert 0 <= batch['l'].min() and batch['l'].max() <= 1
    assert 0 <= batch['ab'].min() and batch['ab'].max() <= 1
    assert batch['ab'].std() > 0.01  # colour photos, not grey
    assert set(batch['label']) <= {0, 1, 2}


def test_same_seed_same_batches(folder_data):
  config, train, _, _ = folder_data
  make = lambda seed: input_pipeline.train_iterator(  # pylint: disable=g-long-lambda
      train, config, seed=seed, shard_index=0, shard_count=1)
  first = _take(make(7), 3)
  _assert_same(first, _take(make(7), 3))
  assert not np.array_equal(first[0]['ab'], next(make(8))['ab'])


def test_iterator_state_restored_with_orbax(folder_data, tmp_path):
  config, train, _, _ = folder_data
  iterator = input_pipeline.train_iterator(train, config, shard_index=0, shard_count=1)
  _take(iterator, 3)
  manager = ocp.CheckpointManager(tmp_path / 'ckpt')
  manager.save(3, args=ocp.args.Composite(data=grain.checkpoint.CheckpointSave(iterator)))
  manager.wait_until_finished()
  uninterrupted = _take(iterator, 3)

  restored = input_pipeline.train_iterator(train, config, shard_index=0, shard_count=1)
  manager.restore(3, args=ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(restored)))
  _assert_same(uninterrupted, _take(restored, 3))


def test_iterator_state_with_worker_processes(folder_data):
  config, train, _, _ = folder_data
  config = _config(config.data.tfds_dir, num_workers=1)
  iterator = input_pipeline.train_iterator(train, config, shard_index=0, shard_count=1)
  try:
    first = _take(iterator, 2)
    state = iterator.get_state()
    uninterrupted = _take(iterator, 2)
  finally:
    iterator.close()
  restored = input_pipeline.train_iterator(train, config, shard_index=0, shard_count=1)
  try:
    restored.set_state(state)
    _assert_same(uninterrupted, _take(restored, 2))
  finally:
    restored.close()
  assert first[0]['l'].shape == (4, CROP, CROP, 1)


def test_train_shards_are_disjoint_and_cover_the_data():
  # A plain list is a valid source; its labels name the examples.
  image = np.asarray(_photo('coffee', size=40))
  source = [{'image': image, 'label': i} for i in range(8)]
  config = _config('.')
  seen = []
  for index in range(2):
    iterator = input_pipeline.train_iterator(source, config, shard_index=index, shard_count=2)
    epoch = _take(iterator, 2)  # 4 examples per shard, per-host batch 4 / 2 = 2
    assert epoch[0]['l'].shape[0] == 2
    seen.append({int(label) for batch in epoch for label in batch['label']})
  assert len(seen[0]) == len(seen[1]) == 4
  assert not seen[0] & seen[1] and seen[0] | seen[1] == set(range(8))


def test_eval_batches_one_deterministic_pass(folder_data):
  config, train, _, _ = folder_data
  full = list(input_pipeline.eval_batches(train, config, shard_index=0, shard_count=1))
  assert [b['l'].shape[0] for b in full] == [4, 4]
  _assert_same(full, list(input_pipeline.eval_batches(train, config, shard_index=0, shard_count=1)))
  labels = sorted(int(label) for b in full for label in b['label'])
  assert labels == sorted(int(e['label']) for e in train.source)
  # Two shards: disjoint, together the whole pass (each host gets batch 4 / 2).
  rows = lambda batches: {b['ab'][i].tobytes() for b in batches for i in range(len(b['ab']))}
  shards = [rows(input_pipeline.eval_batches(train, config, shard_index=i, shard_count=2))
            for i in range(2)]
  assert not shards[0] & shards[1] and shards[0] | shards[1] == rows(full)


def test_prepare_photo_downscales_and_uprights():
  exif = Image.Exif()
  exif[0x0112] = 6  # stored sideways: rotate 90 degrees clockwise to view
  data = _jpeg_bytes(_photo('coffee', size=120), exif=exif.tobytes())  # 180 x 120
  stored, reason = photos.prepare_photo(data, max_short_side=60)
  assert reason is None
  assert Image.open(io.BytesIO(stored)).size == (60, 90)  # upright: portrait


def test_places365_with_mock_data(tmp_path):
  config = _config(tmp_path, source='places365', labels='source')
  with tfds.testing.mock_data(num_examples=10, policy=tfds.testing.MockPolicy.USE_CODE):
    train, val, info = input_pipeline.build_datasets(config)
    assert info.num_classes == 365 and info.class_names[0] == 'airfield'
    batch = next(input_pipeline.train_iterator(train, config, shard_index=0, shard_count=1))
    evals = list(input_pipeline.eval_batches(val['val'], config, shard_index=0, shard_count=1))
  assert batch['l'].shape == (4, CROP, CROP, 1) and batch['ab'].shape == (4, CROP, CROP, 2)
  assert ((0 <= batch['label']) & (batch['label'] < 365)).all()
  assert [b['ab'].shape[0] for b in evals] == [4, 4, 2]


def _tar(path, members):
  """Writes a tar of {member name: bytes}."""
  with tarfile.open(path, 'w') as tar:
    for name, data in members.items():
      member = tarfile.TarInfo(name)
      member.size = len(data)
      tar.addfile(member, io.BytesIO(data))


def _fake_places365(manual_dir):
  """The three Places365 tars, in their real layout, with 5 train and 2 val photos."""
  square = lambda name: _jpeg_bytes(_photo(name, size=256).crop((0, 0, 256, 256)))
  train = {'/a/airfield/00000001.jpg 0': square('coffee'),
           '/a/airfield/00000002.jpg 0': square('rocket'),
           '/b/bakery/shop/00000001.jpg 25': square('chelsea'),
           '/b/bakery/shop/00000002.jpg 25': _jpeg_bytes(_photo('coffee', 256).convert('L')),
           '/z/zen_garden/00000001.jpg 364': square('astronaut')}
  val = {'Places365_val_00000001.jpg 165': square('chelsea'),
         'Places365_val_00000002.jpg 3': square('astronaut')}
  _tar(manual_dir / 'train_256_places365standard.tar',
       {'data_256' + k.split()[0]: v for k, v in train.items()})
  _tar(manual_dir / 'val_256.tar', {'val_256/' + k.split()[0]: v for k, v in val.items()})
  _tar(manual_dir / 'filelist_places365-standard.tar',
       {'places365_train_standard.txt': '\n'.join(train).encode(),
        'places365_val.txt': '\n'.join(val).encode()})


def test_places365_builds_from_manual_tars(tmp_path):
  manual = tmp_path / 'manual'
  manual.mkdir()
  _fake_places365(manual)
  config = _config(tmp_path / 'tfds', source='places365', labels='source',
                   manual_dir=str(manual))
  (train,), val, info = input_pipeline.build_datasets(config)
  train, val = train.source, val['val'].source
  assert (info.num_train, info.num_val) == (4, 2)
  assert info.skipped['train'][photos.GREYSCALE] == 1
  labels = {e['filename'].decode().split('/', 1)[1]: int(e['label']) for e in train}
  assert labels == {'a/airfield/00000001.jpg': 0, 'a/airfield/00000002.jpg': 0,
                    'b/bakery/shop/00000001.jpg': 25, 'z/zen_garden/00000001.jpg': 364}
  assert sorted(int(e['label']) for e in val) == [3, 165]
  assert train[0]['image'].shape == (256, 256, 3)


def test_places365_missing_files_are_named(tmp_path):
  manual = tmp_path / 'manual'
  manual.mkdir()
  (manual / 'filelist_places365-standard.tar').write_bytes(b'')
  config = _config(tmp_path / 'tfds', source='places365', manual_dir=str(manual))
  with pytest.raises(FileNotFoundError) as error:
    input_pipeline.build_datasets(config)
  message = str(error.value)
  assert "put 'train_256_places365standard.tar'" in message
  assert "put 'val_256.tar'" in message
  assert "put 'filelist_places365-standard.tar'" not in message
  assert f"in folder '{manual}'" in message
