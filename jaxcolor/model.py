"""The network of Iizuka, Simo-Serra and Ishikawa 2016, one Linen module per block.

Every convolution is 3x3 with padding 1 (the fusion layer is 1x1) and is
followed by BatchNorm and ReLU, except the two output layers. `width` scales
every hidden channel count, so the paper's network (width 1.0) and a tiny test
network are the same code. Shapes: L_BxHxWx1 in [0, 1] with H, W multiples of 8;
the global input is G x G (224 in the paper; any multiple of 32).
"""
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcolor import bins as bins_lib
from jaxcolor import color
from jaxcolor import encoder as encoder_lib
from jaxcolor import hints as hints_lib
from jaxcolor import ops

# (output channels, stride) of each 3x3 convolution, at width 1.0.
LOW_LEVEL = ((64, 2), (128, 1), (128, 2), (256, 1), (256, 2), (512, 1))
MID_LEVEL = ((512, 1), (256, 1))
GLOBAL_CONV = ((512, 2), (512, 1), (512, 2), (512, 1))
GLOBAL_FC = (1024, 512, 256)
CLASSIFIER_FC = 256
FUSION = 256
# Colorization network: (channels, upsample x2 after this conv), then conv -> 2.
COLORIZATION = ((128, True), (64, False), (64, True), (32, False))
STRIDE = 8          # local path: H x W -> H/8 x W/8 features -> H/2 x W/2 output
# How far the local path sees: an input pixel changes outputs at most this many
# pixels away (13 3x3 convolutions at strides 1..8, nearest upsampling, the
# half-resolution output; tests/test_fast_paths.py measures it). Tiles that
# overlap by this much give exactly the untiled result.
LOCAL_REACH = 64
GLOBAL_STRIDE = 32  # global path: G x G -> G/32 x G/32 before flattening


def scaled(channels, width):
  """Hidden channel count at a width multiplier."""
  return max(1, int(round(channels * width)))


def batch_norm(train, dtype, param_dtype, axis_name):
  """BatchNorm with Torch's momentum (0.1 there is 0.9 here); when training
  under pmap the batch statistics are averaged over `axis_name`."""
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                      dtype=dtype, param_dtype=param_dtype,
                      axis_name=axis_name if train else None, name='bn')


class Conv(nn.Module):
  """A bias-free square convolution, padding kernel // 2 (nn.Conv's parameters).

  `kernels` says how it is computed, never what: XLA's own convolution ('xla')
  or the fast paths measured on CPU ('cpu', see `jaxcolor.ops`). With 'cpu'
  kernels, a layer whose Winograd-transformed kernel is in the 'winograd'
  collection runs as Winograd F(4x4, 3x3), and when that collection is
  mutable the layers where it pays put it there (see `with_winograd_kernels`).
  """
  features: int
  kernel: int = 3
  stride: int = 1
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32
  kernels: str = 'xla'

  @nn.compact
  def __call__(self, x):
    kernel = self.param('kernel', nn.initializers.lecun_normal(),
                        (self.kernel, self.kernel, x.shape[-1], self.features), self.param_dtype)
    x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
    if self.kernels == 'cpu' and ops.winograd_pays(kernel.shape, self.stride):
      if self.is_mutable_collection('winograd') and not self.is_initializing():
        self.put_variable('winograd', 'kernel', ops.winograd_weights(kernel))
      if self.has_variable('winograd', 'kernel'):
        return ops.winograd_conv3x3(x, self.get_variable('winograd', 'kernel'))
    return ops.conv(x, kernel, self.stride, self.kernels)


def with_winograd_kernels(model, variables, global_size):
  """`variables` plus a 'winograd' collection of transformed kernels for the
  layers that run faster as Winograd convolutions, when `model` has 'cpu'
  kernels (inference only: training never passes it, so it trains the plain
  convolutions)."""
  wide = any(leaf.ndim == 4 and ops.winograd_pays(leaf.shape, stride=1)
             for leaf in jax.tree.leaves(variables['params']))
  if model.kernels != 'cpu' or not wide:  # nothing to run (narrow: the bundled model)
    return variables
  l = jnp.zeros((1, global_size, global_size, model.input_channels))
  _, extra = jax.jit(lambda v: model.apply(v, l, mutable=['winograd']))(variables)
  return {**variables, **extra}


class ConvBN(nn.Module):
  """Conv (no bias: BatchNorm has one) -> BatchNorm -> ReLU."""
  features: int
  stride: int = 1
  kernel: int = 3
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32
  axis_name: str | None = None
  kernels: str = 'xla'

  @nn.compact
  def __call__(self, x, train):
    x = Conv(self.features, self.kernel, self.stride, self.dtype, self.param_dtype,
             self.kernels, name='conv')(x)
    return nn.relu(batch_norm(train, self.dtype, self.param_dtype, self.axis_name)(x))


class DenseBN(nn.Module):
  """Fully connected (no bias) -> BatchNorm -> ReLU."""
  features: int
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32
  axis_name: str | None = None

  @nn.compact
  def __call__(self, x, train):
    x = nn.Dense(self.features, use_bias=False, dtype=self.dtype,
                 param_dtype=self.param_dtype, name='dense')(x)
    return nn.relu(batch_norm(train, self.dtype, self.param_dtype, self.axis_name)(x))


class Block(nn.Module):
  """What every paper block shares: width, dtypes, BatchNorm axis, conv kernels."""
  width: float = 1.0
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32
  axis_name: str | None = None
  kernels: str = 'xla'

  def conv(self, name, channels, stride=1, kernel=3):
    return ConvBN(scaled(channels, self.width), stride, kernel, self.dtype,
                  self.param_dtype, self.axis_name, self.kernels, name=name)

  def dense(self, name, features):
    return DenseBN(scaled(features, self.width), self.dtype, self.param_dtype,
                   self.axis_name, name=name)

  @property
  def output_dtype(self):
    """Outputs are at least float32, whatever the compute dtype."""
    return jnp.promote_types(self.dtype, jnp.float32)


class LowLevel(Block):
  """Shared trunk, one set of weights for both paths: BxHxWx1 -> BxH/8xW/8x512w.

  `valid` (the local path's, see Colorizer.local_path): the (rows, columns) of the
  input that are the image; the rest is zeroed before every convolution."""

  @nn.compact
  def __call__(self, l_BxHxWx1, train, valid=None):
    x, scale = l_BxHxWx1.astype(self.dtype), 1
    for i, (channels, stride) in enumerate(LOW_LEVEL, 1):
      x = self.conv(f'conv{i}', channels, stride)(ops.zero_beyond(x, valid, scale), train)
      scale *= stride
    return x


class MidLevel(Block):
  """Local features: BxH/8xW/8x512w -> BxH/8xW/8x256w."""

  @nn.compact
  def __call__(self, x, train, valid=None):
    for i, (channels, stride) in enumerate(MID_LEVEL, 1):
      x = self.conv(f'conv{i}', channels, stride)(ops.zero_beyond(x, valid, STRIDE), train)
    return x


class Global(Block):
  """Global features from the trunk's G/8 x G/8 output -> (Bx512w, Bx256w)."""

  @nn.compact
  def __call__(self, x, train):
    for i, (channels, stride) in enumerate(GLOBAL_CONV, 1):
      x = self.conv(f'conv{i}', channels, stride)(x, train)
    x = x.reshape(x.shape[0], -1)
    x = self.dense('fc1', GLOBAL_FC[0])(x, train)
    x512 = self.dense('fc2', GLOBAL_FC[1])(x, train)
    return x512, self.dense('fc3', GLOBAL_FC[2])(x512, train)


class Fusion(Block):
  """Tile the global vector over every local position, concat, 1x1 conv."""

  @nn.compact
  def __call__(self, local_BxHxWxC, global_BxD, train):
    b, h, w, _ = local_BxHxWxC.shape
    tiled = jnp.broadcast_to(global_BxD[:, None, None, :].astype(local_BxHxWxC.dtype),
                             (b, h, w, global_BxD.shape[-1]))
    x = jnp.concatenate([local_BxHxWxC, tiled], axis=-1)
    return self.conv('conv', FUSION, kernel=1)(x, train)


class Colorization(Block):
  """Fused features BxH/8xW/8xC -> chrominance BxH/2xW/2x2 in [0, 1] (the paper's
  head), or with `bins` > 0, logits BxH/2xW/2xbins over a*b* bins (jaxcolor.bins);
  given a `temperature` (inference), their annealed mean as the paper's head's output,
  decoded band by band (bins.decode_features), never all the logits at once."""
  bins: int = 0

  @nn.compact
  def __call__(self, x, train, valid=None, temperature=None):
    scale = STRIDE
    for i, (channels, upsample) in enumerate(COLORIZATION, 1):
      x = self.conv(f'conv{i}', channels)(ops.zero_beyond(x, valid, scale), train)
      if upsample:
        x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)  # nearest, x2
        scale //= 2
    x = ops.zero_beyond(x, valid, scale)
    if self.bins and temperature is not None:
      head = self.variables['params']['output']
      return color.normalize_ab(bins_lib.decode_features(x, head['kernel'], head['bias'],
                                                         temperature))
    x = nn.Conv(self.bins or 2, (3, 3), padding=1, dtype=self.dtype,
                param_dtype=self.param_dtype, name='output')(x)
    x = x.astype(self.output_dtype)
    return x if self.bins else nn.sigmoid(x)


class Classifier(Block):
  """Scene classification from the global 512-vector -> B x num_classes logits."""
  num_classes: int = 205

  @nn.compact
  def __call__(self, x, train):
    x = self.dense('fc1', CLASSIFIER_FC)(x, train)
    logits = nn.Dense(self.num_classes, dtype=self.dtype, param_dtype=self.param_dtype,
                      name='logits')(x)
    return logits.astype(self.output_dtype)


class Colorizer(nn.Module):
  """The whole network: (L at H x W, L at G x G) -> (ab at H/2 x W/2, logits).

  When `l_global` is None the local input is also the global one (a G x G
  training crop) and the low-level features are computed once for both paths.
  `global_features`, `local_path` and `classify` run the parts separately
  (tiled inference: one global vector for every tile); `scene_logits` names the
  scene from a view of its own (a frozen encoder's labels at inference).
  `kernels` is how the convolutions are computed, chosen by inference and
  training for their backend (`ops.kernels_for`); the parameters do not depend
  on it.

  Two options are not the paper's (configs/default.py): `bins` > 0 predicts a
  distribution over that many a*b* bins instead of a*b* itself, and `encoder`
  ('efficientnet_lite0') adds a pretrained ImageNet encoder to the global path:
  its pooled features join the global vector, and its own classifier names the
  scene (jaxcolor/encoder.py). With `hints`, both inputs carry three more
  channels after L: the hint planes (jaxcolor/hints.py), seen by the local and the
  global path alike, so that a hint can recolour a whole region.
  """
  width: float = 1.0
  num_classes: int = 205
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32
  axis_name: str | None = None
  kernels: str = 'xla'
  bins: int = 0
  encoder: str = ''
  encoder_trainable: bool = False
  hints: bool = False

  @property
  def input_channels(self):
    """L, then the hint planes of a model that takes hints."""
    return 1 + hints_lib.NUM_PLANES * self.hints

  def setup(self):
    block = dict(width=self.width, dtype=self.dtype, param_dtype=self.param_dtype,
                 axis_name=self.axis_name, kernels=self.kernels)
    self.low_level = LowLevel(**block)
    self.global_ = Global(name='global', **block)
    self.mid_level = MidLevel(**block)
    self.fusion = Fusion(**block)
    self.colorization = Colorization(bins=self.bins, **block)
    if self.encoder:
      self.scene_encoder = encoder_lib.SceneEncoder(
          self.encoder, self.encoder_trainable, self.kernels, name='encoder')
      self.encoder_projection = DenseBN(scaled(GLOBAL_FC[2], self.width), self.dtype,
                                        self.param_dtype, self.axis_name)
    else:
      self.classifier = Classifier(num_classes=self.num_classes, **block)

  def __call__(self, l_BxHxWx1, l_global_BxGxGx1=None, train=False, temperature=None):
    low = self.low_level(l_BxHxWx1, train)
    shared = l_global_BxGxGx1 is None
    low_global = low if shared else self.low_level(l_global_BxGxGx1, train)
    l_global = l_BxHxWx1 if shared else l_global_BxGxGx1
    scene, fusion = self._global(low_global, l_global, train)
    ab_half = self._colorize(low, fusion, train, temperature=temperature)
    return ab_half, self.classify(scene, train)

  def _global(self, low_global, l_global, train):
    """(what `classify` reads, the vector fused into every local position)."""
    global_512, global_256 = self.global_(low_global, train)
    if not self.encoder:
      return global_512, global_256
    pooled = self.scene_encoder(l_global[..., :1], train)
    projected = self.encoder_projection(pooled, train)
    return pooled, jnp.concatenate([global_256, projected.astype(global_256.dtype)], -1)

  def _colorize(self, low, global_256, train, valid=None, temperature=None):
    fused = self.fusion(self.mid_level(low, train, valid), global_256, train)
    return self.colorization(fused, train, valid, temperature)

  def global_features(self, l_global_BxGxGx1, train=False):
    """The global path: (what `classify` reads: B x 512w, or the encoder's B x 1280;
    the vector for the fusion: B x 256w, plus the encoder's B x 256w)."""
    return self._global(self.low_level(l_global_BxGxGx1, train), l_global_BxGxGx1, train)

  def local_path(self, l_BxHxWx1, global_256, train=False, valid=None, temperature=None):
    """The local path given the global vector: ab at H/2 x W/2. `valid`: None, or
    the (rows, columns) at the top left of the input that hold the image (multiples
    of 8, traced): every convolution then sees zeros beyond them, as it would at
    the image's own size, so those outputs are the same (up to float32 rounding).
    `temperature`: a bins model's colours, not its logits (Colorization)."""
    low = self.low_level(l_BxHxWx1, train, valid)
    return self._colorize(low, global_256, train, valid, temperature)

  def scene_logits(self, l_BxSxSx1):
    """The encoder's ImageNet logits, B x 1000, from a grey view of the scene of its
    own (any S; inference's: encoder.label_size). Nothing else reads it: the
    colours come from the global path's G x G input alone."""
    return self.classify(self.scene_encoder(l_BxSxSx1[..., :1]))

  def classify(self, scene, train=False):
    if self.encoder:
      return self.scene_encoder.classify(scene)
    return self.classifier(scene, train)


def from_config(model_config, **overrides):
  """A Colorizer from a config's `model` section (width, num_classes, dtypes, and
  the optional head and encoder; checkpoints from before them have neither)."""
  head = model_config.get('head', 'regression')
  return Colorizer(width=model_config.width, num_classes=model_config.num_classes,
                   dtype=jnp.dtype(model_config.get('dtype', 'float32')),
                   param_dtype=jnp.dtype(model_config.get('param_dtype', 'float32')),
                   bins=bins_lib.num_bins() if head == 'bins' else 0,
                   encoder=model_config.get('encoder', ''),
                   encoder_trainable=model_config.get('encoder_trainable', False),
                   hints=model_config.get('hints', False), **overrides)


def flops(height, width, global_size=224, multiplier=1.0, num_classes=205):
  """Analytic forward FLOPs (2 x multiply-accumulates of convs and FCs) at H x W.

  The low-level trunk is counted twice unless the image is G x G (shared run).
  BatchNorm, activations, upsampling and resizing are not counted.
  """
  def c(channels):
    return scaled(channels, multiplier)

  def conv_stack(h, w, cin, spec):
    macs = 0
    for channels, stride in spec:
      h, w = -(-h // stride), -(-w // stride)
      macs += h * w * 9 * cin * c(channels)
      cin = c(channels)
    return macs, h, w, cin

  low, h, w, cin = conv_stack(height, width, 1, LOW_LEVEL)
  macs = low
  if (height, width) != (global_size, global_size):
    macs += conv_stack(global_size, global_size, 1, LOW_LEVEL)[0]
  mid, _, _, cin = conv_stack(h, w, cin, MID_LEVEL)
  g = global_size // GLOBAL_STRIDE
  glob, _, _, gc = conv_stack(global_size // STRIDE, global_size // STRIDE, c(512),
                              GLOBAL_CONV)
  fcs = [g * g * gc, *(c(f) for f in GLOBAL_FC)]
  macs += mid + glob + sum(a * b for a, b in zip(fcs, fcs[1:]))
  macs += c(GLOBAL_FC[1]) * c(CLASSIFIER_FC) + c(CLASSIFIER_FC) * num_classes
  macs += h * w * (cin + c(GLOBAL_FC[2])) * c(FUSION)
  cin = c(FUSION)
  for channels, upsample in COLORIZATION:
    macs += h * w * 9 * cin * c(channels)
    cin = c(channels)
    if upsample:
      h, w = 2 * h, 2 * w
  macs += h * w * 9 * cin * 2
  return 2 * macs
