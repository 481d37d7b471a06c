"""The pretrained encoder beside the global path: ImageNet's weights, frozen in
training, its own classifier naming the scenes (at inference from a 224 x 224 view
of their own, whatever the global size)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcolor import color
from jaxcolor import efficientnet
from jaxcolor import encoder
from jaxcolor import inference
from jaxcolor import model as model_lib
from jaxcolor.training import input_pipeline
from jaxcolor.training import train_step as step_lib
from jaxcolor.training import trainer
from conftest import photo
from conftest import random_variables
from conftest import tiny_model_config

ENCODER = 'efficientnet_lite0'

try:
  efficientnet.weights_path()
except efficientnet.WeightsMissingError as e:
  pytest.skip(str(e), allow_module_level=True)


def photo_l(name, height, width):
  rgb = photo(name)[:height, :width] / 255.0
  return color.rgb_to_network(rgb)[0][..., 0].astype(np.float32)


@pytest.fixture
def encoder_config(train_config):
  train_config.model.encoder = ENCODER
  train_config.model.head = 'bins'
  train_config.model.num_classes = len(encoder.class_names())
  train_config.data.labels = 'none'
  return train_config


def test_encoder_names_scenes_with_imagenet_s_head_and_stays_frozen(encoder_config):
  """One training state serves both checks (the encoder compiles slowly on CPU)."""
  state = step_lib.create_train_state(encoder_config, jax.random.key(0))
  variables = {'params': state.params, 'batch_stats': state.batch_stats}
  model = model_lib.from_config(encoder_config.model)
  l = jnp.asarray(np.random.default_rng(0).random((1, 32, 32, 1)), jnp.float32)
  _, logits = jax.jit(lambda v, l: model.apply(v, l, train=False))(variables, l)
  rgb = color.grey_rgb(l[..., 0]) * 255
  alone = efficientnet.EfficientNetLite0(depthwise='shifts').apply(
      efficientnet.load_pretrained(), efficientnet.preprocess(rgb))
  np.testing.assert_allclose(logits, alone, rtol=1e-4, atol=1e-4)
  assert len(encoder.class_names()) == 1000 and encoder.class_names()[1].startswith('goldfish')
  # Its labels are shown only when confident.
  predictor = inference.Predictor(variables, encoder_config.model, encoder.class_names())
  probabilities = np.zeros(1000)
  probabilities[[1, 2]] = [encoder.LABEL_CONFIDENCE + 0.1, encoder.LABEL_CONFIDENCE - 0.1]
  assert [name for name, _ in predictor.top_k(probabilities, 3)] == [encoder.class_names()[1]]
  probabilities[1] = encoder.LABEL_CONFIDENCE - 0.2
  assert predictor.top_k(probabilities, 3) == []

  train, _, _ = input_pipeline.build_datasets(encoder_config)
  batch = trainer._device_batch(next(input_pipeline.train_iterator(train, encoder_config)))
  p_train_step = step_lib.parallel(step_lib.train_step, encoder_config)
  stepped, metrics = p_train_step(step_lib.replicate(state), batch)
  stepped = jax.tree.map(lambda x: x[0], stepped)
  assert np.isfinite(float(metrics['loss'][0])) and float(metrics['colour_loss'][0]) > 0
  for part, before in state.params.items():
    moved = max(float(jnp.abs(a - b).max()) for a, b in
                zip(jax.tree.leaves(before), jax.tree.leaves(stepped.params[part])))
    assert (moved == 0) == (part == 'encoder'), (part, moved)
  jax.tree.map(np.testing.assert_array_equal, state.batch_stats['encoder'],
               stepped.batch_stats['encoder'])


def test_only_a_frozen_encoder_at_another_size_has_a_label_view(tiny_config):
  config = lambda **options: tiny_model_config(tiny_config, **options)
  assert encoder.label_size(config(encoder=ENCODER, global_size=128)) == encoder.LABEL_SIZE == 224
  assert encoder.label_size(config(encoder=ENCODER, global_size=224)) is None
  assert encoder.label_size(config(encoder=ENCODER, encoder_trainable=True)) is None
  assert encoder.label_size(config(global_size=128)) is None  # the paper's classifier


@pytest.fixture(scope='module')
def frozen_at_128(tiny_config):
  """(variables, model config) of a tiny colorizer with the frozen ImageNet encoder at
  global size 128, as the models trained now: its own layers random (what is
  tested is where the labels and the colours come from, not how good they are)."""
  config = tiny_model_config(tiny_config, encoder=ENCODER, global_size=128,
                             num_classes=len(encoder.class_names()))
  return encoder.with_pretrained(random_variables(config, seed=0)), config


def imagenet_probabilities(l_HxW, size):
  """ImageNet's EfficientNet-Lite0 on grey L resized to size x size, by hand."""
  view = inference.resize_to_square(jnp.asarray(l_HxW)[..., None], size)[None]
  logits = efficientnet.EfficientNetLite0(depthwise='shifts').apply(
      efficientnet.load_pretrained(), encoder.network_input(view))
  return np.asarray(jax.nn.softmax(logits[0]))


def test_a_frozen_encoder_names_the_scene_from_224_and_colours_from_the_global_size(
    frozen_at_128):
  variables, config = frozen_at_128
  predictor = inference.Predictor(variables, config, encoder.class_names())
  assert predictor.label_size == 224 and predictor.global_size == 128
  without = inference.Predictor(variables, config, encoder.class_names())
  without.label_size = None  # the view off: the labels read the global input too
  l = photo_l('chelsea', 90, 120)
  # A photo padded to its bucket, one that is its own 128 x 128 global input, and a
  # style image's scene (rescaled as the photo).
  cases = {'bucket': (l, None), 'global size': (photo_l('chelsea', 128, 128), None),
           'style': (l, photo_l('rocket', 200, 150))}
  for name, (image, style_l) in cases.items():
    prediction = predictor(image, style_l=style_l)
    scene = image if style_l is None else style_l
    at_224, at_128 = imagenet_probabilities(scene, 224), imagenet_probabilities(scene, 128)
    np.testing.assert_allclose(prediction.probabilities, at_224, atol=1e-5, err_msg=name)
    # The views name it differently: the labels are the 224 view's, not the 128 one's.
    assert np.abs(at_224 - at_128).max() > 0.05, name
    plain = without(image, style_l=style_l)
    np.testing.assert_allclose(plain.probabilities, at_128, atol=1e-5, err_msg=name)
    # The colours are the global size's, bit for bit.
    np.testing.assert_array_equal(prediction.ab, plain.ab, err_msg=name)
    np.testing.assert_array_equal(prediction.rgb, plain.rgb, err_msg=name)
  assert predictor.trace_count == 3  # one program per bucket, and the labels' own
