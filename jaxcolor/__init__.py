"""jaxcolor: automatic image colorization (Iizuka, Simo-Serra, Ishikawa 2016) in JAX.

Importing it changes nothing global. The commands (train.py, infer.py,
evaluate.py, benchmarks/) first call `enable_fast_cpu_convolutions()`; a
program that uses the library on CPU may do the same.
"""
import functools
import os
import subprocess
import sys
import warnings

# XLA:CPU's default sends convolutions to YNNPACK, slow for them and ~16x slow
# for their weight gradients; its own large reductions (BatchNorm statistics in
# training) become slow reduce-windows. YNNPACK for dots and reductions only
# makes a training step 1.3x faster (docs/PERFORMANCE.md).
YNN_FLAG = '--xla_cpu_experimental_ynn_fusion_type=individual_dot,reduce'


@functools.cache
def enable_fast_cpu_convolutions():
  """Adds YNN_FLAG to XLA_FLAGS (once per process) before JAX starts its backend.

  XLA reads XLA_FLAGS when the backend starts (the first computation or device
  query), so a later call only warns. Nothing happens when XLA_FLAGS already
  sets the option, when JAX_PLATFORMS leaves out the CPU (the flag is an XLA:CPU
  option) or when the installed jaxlib does not accept the flag.
  """
  current = os.environ.get('XLA_FLAGS', '')
  platforms = os.environ.get('JAX_PLATFORMS', '')
  if YNN_FLAG.split('=')[0] in current or (platforms and 'cpu' not in platforms):
    return
  if _backend_started():
    warnings.warn('JAX started before jaxcolor.enable_fast_cpu_convolutions() could set '
                  f'XLA_FLAGS={YNN_FLAG}: CPU convolutions stay on XLA\'s slower default. '
                  'Call it before the first JAX computation, or set XLA_FLAGS yourself.',
                  stacklevel=2)
    return
  flags = f'{current} {YNN_FLAG}'.strip()
  if _xla_accepts(flags):
    os.environ['XLA_FLAGS'] = flags


def _backend_started():
  if 'jax' not in sys.modules:
    return False
  from jax._src import xla_bridge  # no public API says this
  return xla_bridge.backends_are_initialized()


def _xla_accepts(flags):
  """Whether JAX's CPU backend starts with these XLA_FLAGS: XLA ends the process
  on a flag or value it does not know (an experimental flag may come and go with
  jaxlib versions), so a child process tries them."""
  env = {**os.environ, 'XLA_FLAGS': flags, 'JAX_PLATFORMS': 'cpu'}
  try:
    probe = subprocess.run([sys.executable, '-c', 'import jax; jax.devices()'], env=env,
                           capture_output=True, timeout=120)
  except (OSError, subprocess.TimeoutExpired):  # no interpreter to start, or a hung one
    return False
  return probe.returncode == 0
