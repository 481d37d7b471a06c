"""Each backend gets the kernels that were measured for it, and they all agree.

On CPU, inference runs the wide layers as Winograd convolutions and training the
stride-2 layers with their phase-split input gradient (jaxcolor.ops); a GPU or
TPU runs XLA's own convolutions. That accelerator path runs here on CPU, chosen
as it would be there: with JAX's default backend reported as 'gpu'.
"""
import json

from flax import jax_utils
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcolor import color
from jaxcolor import inference
from jaxcolor import ops
from jaxcolor.training import input_pipeline
from jaxcolor.training import train_step as step_lib
from test_inference import photo_l

from benchmarks import device_check

WINOGRAD_PRODUCTS = 'batching_dims = [0] x [0]'  # Winograd's 36 batched matrix products
XLA_STRIDE2_INPUT_GRADIENT = 'lhs_dilate = [2, 2]'


@pytest.fixture
def on_gpu(monkeypatch):
  """Makes JAX's default backend read 'gpu' (computations still run on CPU)."""
  def pretend():
    monkeypatch.setattr(jax, 'default_backend', lambda: 'gpu')
  return pretend


def test_kernels_follow_the_backend():
  assert ops.kernels_for() == 'cpu'  # the tests run on CPU
  assert ops.kernels_for('cpu') == 'cpu'
  assert ops.kernels_for('gpu') == ops.kernels_for('tpu') == 'xla'
  with pytest.raises(ValueError, match="kernels='gpu'"):
    ops.conv(jnp.ones((1, 4, 4, 1)), jnp.ones((3, 3, 1, 1)), 1, 'gpu')


def test_predictor_on_an_accelerator_runs_xla_convolutions(tiny_config, tiny_variables,
                                                           monkeypatch, on_gpu):
  # The tiny model's layers are too narrow for Winograd; lower the bar so CPU uses it.
  monkeypatch.setattr(ops, 'WINOGRAD_MIN_CHANNELS', 1)
  cpu = inference.Predictor(tiny_variables, tiny_config.model)
  on_gpu()
  accelerator = inference.Predictor(tiny_variables, tiny_config.model)
  assert (cpu.model.kernels, accelerator.model.kernels) == ('cpu', 'xla')
  assert 'winograd' in cpu.variables and 'winograd' not in accelerator.variables
  l = photo_l('astronaut', 72, 56)
  for predictor, winograd in ((cpu, True), (accelerator, False)):
    hlo = predictor.lower(('colorize', 96, 64, False)).as_text()  # 72 x 56's bucket
    assert (WINOGRAD_PRODUCTS in hlo) == winograd
  a, b = cpu(l), accelerator(l)
  np.testing.assert_allclose(b.rgb, a.rgb, atol=0.1 / 255)  # Winograd's rounding (~5e-5)
  np.testing.assert_allclose(b.probabilities, a.probabilities, atol=1e-4)


def test_training_on_an_accelerator_runs_xla_convolutions(train_config, on_gpu):
  train_source, _, _ = input_pipeline.build_datasets(train_config)
  batch = next(input_pipeline.train_iterator(train_source, train_config))
  batch = jax.tree.map(lambda x: x[None], batch)  # one device
  devices = jax.devices()[:1]
  step = step_lib.parallel(step_lib.train_step, train_config, devices=devices)
  states, results = [], []
  for backend in ('cpu', 'gpu'):
    if backend == 'gpu':
      on_gpu()
    state = jax_utils.replicate(
        step_lib.create_train_state(train_config, jax.random.key(0)), devices)
    assert state.apply_fn.__self__.kernels == ops.kernels_for(backend)
    lowered = step.lower(state, batch)
    # The stride-2 layers' input gradient: phases on CPU, XLA's own elsewhere.
    assert (XLA_STRIDE2_INPUT_GRADIENT in lowered.as_text()) == (backend == 'gpu')
    states.append(state)
    results.append(lowered.compile()(state, batch))
  jax.tree.map(np.testing.assert_array_equal, *(s.params for s in states))
  (cpu_state, cpu_metrics), (xla_state, xla_metrics) = results
  for key in ('loss', 'mse', 'xent', 'grad_norm'):
    np.testing.assert_allclose(xla_metrics[key], cpu_metrics[key], rtol=1e-5, err_msg=key)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
               xla_state.params, cpu_state.params)


def high_precision_products(fn, *args):
  """(products at HIGHEST precision, all matrix products) in fn's lowered program."""
  lines = [line for line in jax.jit(fn).lower(*args).as_text().splitlines()
           if 'dot_general' in line]
  return sum('precision = [HIGHEST, HIGHEST]' in line for line in lines), len(lines)


def test_colour_conversion_and_winograd_transforms_run_at_full_precision():
  """On GPU/TPU default precision means TF32 or bf16 passes; CPU ignores it, so
  the programs are checked instead of the numbers."""
  rgb = jnp.full((4, 4, 3), 0.5)
  assert high_precision_products(color.rgb_to_lab, rgb) == (1, 1)
  assert high_precision_products(color.lab_to_rgb, rgb) == (1, 1)
  x, w = jnp.ones((1, 8, 8, 4)), jnp.ones((3, 3, 4, 5))
  assert high_precision_products(ops.winograd_weights, w) == (1, 1)
  # Input and output transforms; the products themselves are the convolution's.
  assert high_precision_products(ops.winograd_conv3x3, x, ops.winograd_weights(w)) == (2, 3)


def test_peak_flops_by_device_kind():
  assert device_check.peak_tflops('TPU v5 lite', None)['bfloat16'] == 197  # not v5p's 459
  assert device_check.peak_tflops('NVIDIA H100 80GB HBM3', None) == {'float32': 494,
                                                                     'bfloat16': 989}
  assert device_check.peak_tflops('cpu', None) == {'float32': None, 'bfloat16': None}
  assert device_check.peak_tflops('cpu', 2.0) == {'float32': 2.0, 'bfloat16': 2.0}


def test_device_check_runs_on_cpu(capsys):
  """The accelerator script's smoke test: the 'xla' kernels against the CPU reference."""
  code = device_check.main(['--sizes', '64', '--quick', '--dtypes', 'float32',
                            '--kernels', 'xla', '--peak-tflops', '1'])
  result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert code == 0 and result['ok'] and result['kernels'] == 'xla'
  assert [row['shape'] for row in result['checks']] == [[128, 128], [192, 288]]
  assert all(row['rgb_max'] < 0.01 and row['prob_max'] < 1e-5 for row in result['checks'])
  [infer], [train] = result['infer'], result['train']
  assert infer['size'] == 64 and infer['median_s'] > 0 and 0 < infer['mfu'] < 1
  assert train['batch'] == 2 and train['img_per_s'] > 0 and 0 < train['mfu'] < 1
