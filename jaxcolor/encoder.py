"""A pretrained ImageNet encoder beside the paper's global path (not the paper's).

The paper's global path learns what a scene is from the colorization data alone;
on a small CPU budget it learns little (docs/QUALITY.md). This module lends the
global path an ImageNet classifier (EfficientNet-Lite0, jaxcolor/efficientnet.py)
that sees the same grey global input: its pooled features join the global
vector, and its own 1,000-class head names the scene. Frozen by default: its
weights stay ImageNet's and it runs in inference mode. At inference a frozen
encoder names the scene from a view of its own, the photo at ImageNet's 224 x 224
(`label_size`), whatever the global path's size: the colours never read that view.
"""
import functools
import pathlib

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcolor import color
from jaxcolor import efficientnet

ENCODERS = ('efficientnet_lite0',)
CLASS_NAMES = pathlib.Path(__file__).parent / 'assets' / 'imagenet_classes.txt'
# The side of the square grey view a frozen encoder names the scene from at
# inference: ImageNet's, the size its head was trained at. Fed the global size's
# 128 x 128 view instead, its top-1 is the ImageNet teacher's on the colour original
# for 26-29% of photos; at 224, for 42% (docs/QUALITY.md).
LABEL_SIZE = 224
# What the encoder's labels are shown at: `infer.py --topk`, the web page and
# evaluate.py's label_shown name a scene only at this probability or above, so that
# the labels shown are mostly right (the encoder is often confident and wrong).
# Chosen on the 800 holdout photos seen at LABEL_SIZE (grey, squashed to 224 x 224):
# 32% of them get a label, and 83% of those labels are the ImageNet teacher's top-1
# on the colour original (42% of all top-1 labels are; docs/QUALITY.md).
LABEL_CONFIDENCE = 0.4


class SceneEncoder(nn.Module):
  """Grey L in [0, 1], B x G x G x 1 -> pooled ImageNet features B x 1280;
  `classify` turns them into B x 1000 ImageNet logits."""
  kind: str = 'efficientnet_lite0'
  trainable: bool = False
  kernels: str = 'xla'

  def setup(self):
    if self.kind not in ENCODERS:
      raise ValueError(f'encoder {self.kind!r}: expected one of {ENCODERS}')
    # Depthwise convolutions as shifted slices: the same numbers, ~20x faster on XLA:CPU.
    self.network = efficientnet.EfficientNetLite0(
        depthwise='shifts' if self.kernels == 'cpu' else 'grouped')

  def __call__(self, l_BxGxGx1, train=False):
    pooled = self.network.features(network_input(l_BxGxGx1),
                                   train=train and self.trainable)['pooled']
    return pooled if self.trainable else jax.lax.stop_gradient(pooled)

  def classify(self, pooled_Bx1280):
    return self.network.fc(pooled_Bx1280)


def network_input(l_BxGxGx1):
  """What the encoder sees of grey L in [0, 1]: its grey sRGB, 0..255, preprocessed
  as EfficientNet's (x - 127) / 128, B x G x G x 3."""
  rgb_BxGxGx3 = color.grey_rgb(l_BxGxGx1[..., 0].astype(jnp.float32)) * 255.0
  return efficientnet.preprocess(rgb_BxGxGx3)


def label_size(model_config):
  """The side of the square view of the global input that inference reads a model's
  scene probabilities from (`model_config`: its config's model section): LABEL_SIZE
  for a frozen encoder at another global size (frozen, it is ImageNet's whatever it
  sees, and what it sees for the label changes no colour), else None: the global
  path's own G x G input (a trainable encoder has learned at that size)."""
  frozen = bool(model_config.get('encoder')) and not model_config.get('encoder_trainable', False)
  return LABEL_SIZE if frozen and model_config.global_size != LABEL_SIZE else None


@functools.cache
def class_names():
  """The 1,000 ImageNet class names, in the order of the encoder's logits."""
  return tuple(CLASS_NAMES.read_text().splitlines())


def with_pretrained(variables):
  """Colorizer variables whose encoder is the ImageNet one (training starts so)."""
  pretrained = efficientnet.load_pretrained()
  params = {**variables['params'], 'encoder': {'network': pretrained['params']}}
  stats = {**variables['batch_stats'], 'encoder': {'network': pretrained['batch_stats']}}
  return {**variables, 'params': params, 'batch_stats': stats}
