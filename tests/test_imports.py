"""Importing jaxcolor changes nothing global; the commands still get fast CPU convolutions."""
import inspect
import os
import pathlib
import re
import subprocess
import sys
import textwrap

import jaxcolor

ROOT = pathlib.Path(__file__).resolve().parent.parent


def conv_weight_gradient_hlo():
  """XLA:CPU's compiled text of a 3x3 convolution's weight gradient, at a size
  that XLA's default hands to YNNPACK."""
  import jax
  import jax.numpy as jnp

  def loss(w, x):
    return jax.lax.conv_general_dilated(x, w, (1, 1), 'SAME',
                                        dimension_numbers=('NHWC', 'HWIO', 'NHWC')).sum()
  w, x = jnp.ones((3, 3, 64, 128)), jnp.ones((4, 56, 56, 64))
  return jax.jit(jax.grad(loss)).lower(w, x).compile().as_text()


def ynn_convolutions(hlo_text):
  """How many convolutions a compiled module hands to YNNPACK (in __ynn_fusion calls)."""
  bodies = dict(re.findall(r'^%(\S+) \(.*?\{\n(.*?)^\}', hlo_text, re.M | re.S))
  called = re.findall(r'calls=%(\S+), backend_config=\{"fusion_config":\{"kind":"__ynn_fusion"',
                      hlo_text)
  return sum(bodies[name].count(' convolution(') for name in called)


def run_python(code):
  """Runs `code` in a fresh interpreter whose XLA_FLAGS lack the YNNPACK option."""
  xla_flags = os.environ.get('XLA_FLAGS', '').replace(jaxcolor.YNN_FLAG, '').strip()
  env = {**os.environ, 'PYTHONPATH': str(ROOT), 'XLA_FLAGS': xla_flags}
  source = inspect.getsource(conv_weight_gradient_hlo) + textwrap.dedent(code)
  result = subprocess.run([sys.executable, '-c', source], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=300)
  assert result.returncode == 0, result.stderr
  return result


def test_the_library_changes_nothing_global_and_the_commands_speed_up_convolutions():
  """One interpreter (they are slow to start): importing every module changes
  no global state and starts no JAX backend; the commands' call then keeps
  convolutions off YNNPACK; grain worker processes leave absl flags unparsed."""
  result = run_python("""
      import importlib, os, pkgutil, sys
      from absl import flags, logging as absl_logging
      import jax, matplotlib, numpy as np
      from jax._src import xla_bridge

      def global_state():
        return {**{f'${k}': v for k, v in os.environ.items()},
                'absl flags parsed': flags.FLAGS.is_parsed(),
                'absl verbosity': absl_logging.get_verbosity(),
                'matplotlib backend': matplotlib.rcParams._get('backend'),
                'pyplot': 'matplotlib.pyplot' in sys.modules,
                'jax config': dict(jax.config.values),
                'jax backend started': xla_bridge.backends_are_initialized()}

      before = global_state()
      import jaxcolor
      for module in pkgutil.walk_packages(jaxcolor.__path__, 'jaxcolor.'):
        importlib.import_module(module.name)
      import infer, evaluate, train
      after = global_state()
      changed = {k: (before.get(k), after.get(k))
                 for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
      assert not changed, changed
      jaxcolor.enable_fast_cpu_convolutions()  # as the commands do, before any computation
      print(conv_weight_gradient_hlo())

      from configs import tiny
      from jaxcolor.training import input_pipeline
      flags.DEFINE_string('users_own_flag', 'x', 'a flag of the program that uses jaxcolor')
      config = tiny.get_config()
      config.data.num_workers = 1
      image = np.random.default_rng(0).integers(0, 255, (48, 48, 3), np.uint8)
      source = [{'image': image, 'label': i % 2} for i in range(8)]
      iterator = input_pipeline.train_iterator(source, config, shard_index=0, shard_count=1)
      try:
        assert next(iterator)['l'].shape[0] == config.batch_size
      finally:
        iterator.close()
      assert not flags.FLAGS.is_parsed()
      try:
        flags.FLAGS.users_own_flag
        raise AssertionError('a flag became readable without parsing')
      except flags.UnparsedFlagAccessError:
        pass
      """)
  assert ynn_convolutions(result.stdout) == 0


def test_too_late_to_speed_up_convolutions_warns_once():
  result = run_python("""
      import warnings
      import jax
      jax.devices()  # the backend starts, reading XLA_FLAGS
      import jaxcolor
      with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        jaxcolor.enable_fast_cpu_convolutions()
        jaxcolor.enable_fast_cpu_convolutions()
      print(conv_weight_gradient_hlo())
      print(len(caught), caught[0].message)
      """)
  warnings_line = result.stdout.splitlines()[-1]
  assert warnings_line.startswith('1 JAX started before'), warnings_line
  assert ynn_convolutions(result.stdout) > 0  # what the check above would see if it failed


def test_this_process_compiles_convolutions_outside_ynnpack():
  """conftest calls enable_fast_cpu_convolutions() as the commands do."""
  assert ynn_convolutions(conv_weight_gradient_hlo()) == 0
