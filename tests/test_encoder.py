"""The pretrained encoder beside the global path: ImageNet's weights, frozen in
training, its own classifier naming the scenes."""
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

try:
  efficientnet.weights_path()
except efficientnet.WeightsMissingError as e:
  pytest.skip(str(e), allow_module_level=True)


@pytest.fixture
def encoder_config(train_config):
  train_config.model.encoder = 'efficientnet_lite0'
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
