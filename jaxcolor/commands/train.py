"""Train jaxcolor. On one machine:

  python train.py --config configs/places.py --workdir runs/places
  python train.py --config configs/tiny.py --workdir runs/tiny --config.num_train_steps=50

On several hosts, start the same command on each with
--coordinator_address=HOST:PORT --num_processes=N --process_id=I (or set
JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID). Rerunning a command
resumes from the newest checkpoint in its workdir.
"""
import os
import sys

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

import jaxcolor
from jaxcolor import checkpoint
from jaxcolor.commands import options
from jaxcolor.training import config_checks
from jaxcolor.training import trainer

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Training config file.', lock_config=True)
flags.DEFINE_string('workdir', None, 'Where checkpoints, metrics and profiles go.')
flags.DEFINE_string('coordinator_address', os.environ.get('JAX_COORDINATOR_ADDRESS'),
                    'Multi-host: HOST:PORT of process 0.')
flags.DEFINE_integer('num_processes', int(os.environ.get('JAX_NUM_PROCESSES', 1)),
                     'Multi-host: number of processes.')
flags.DEFINE_integer('process_id', int(os.environ.get('JAX_PROCESS_ID', 0)),
                     'Multi-host: this process.')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv=None):
  """Parses absl flags from `argv` (default sys.argv) and exits with train's status."""
  sys.modules['__main__'].__doc__ = __doc__  # what absl's --help prints
  app.run(train, argv)


def train(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  jaxcolor.enable_fast_cpu_convolutions()
  # Progress is printed; absl's INFO stream (orbax, TFDS) only with --verbosity=0.
  if not FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)
  if FLAGS.coordinator_address:
    jax.distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes,
                               FLAGS.process_id)
  print(f'process {jax.process_index()} of {jax.process_count()}: '
        f'{jax.local_device_count()} local / {jax.device_count()} global '
        f'{jax.devices()[0].platform} devices', flush=True)
  try:
    state = trainer.train_and_evaluate(FLAGS.config, FLAGS.workdir)
  except (config_checks.ConfigError, trainer.TrainingDiverged, checkpoint.CheckpointError) as e:
    options.error(e)
    return 1
  # Every process says what it ended with, so hosts can be checked to agree.
  print(f'process {jax.process_index()}: finished at step {int(state.step)}, weights '
        f'fingerprint {trainer.fingerprint(state)}', flush=True)
