"""Two real train.py processes on 127.0.0.1 (2 CPU devices each) train as one."""
import json
import os
import pathlib
import re
import socket
import subprocess
import sys

from flax import jax_utils
import jax
import numpy as np

from jaxcolor import checkpoint
from jaxcolor.training import input_pipeline
from jaxcolor.training import train_step as step_lib
from jaxcolor.training import trainer

ROOT = pathlib.Path(__file__).resolve().parent.parent
STEPS = 3


def free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def start(process_id, port, config, workdir):
  overrides = [f'--config.data.folder={config.data.folder}', '--config.data.val_folder=',
               '--config.data.labels=source', f'--config.data.tfds_dir={config.data.tfds_dir}',
               f'--config.num_train_steps={STEPS}', f'--config.checkpoint_every_steps={STEPS}',
               '--config.model.dtype=float64', '--config.model.param_dtype=float64']
  env = {**os.environ, 'PYTHONPATH': str(ROOT), 'JAX_PLATFORMS': 'cpu', 'JAX_ENABLE_X64': '1',
         'XLA_FLAGS': '--xla_force_host_platform_device_count=2'}
  return subprocess.Popen(
      [sys.executable, str(ROOT / 'train.py'), '--config', str(ROOT / 'configs/tiny.py'),
       f'--workdir={workdir}', f'--coordinator_address=127.0.0.1:{port}',
       '--num_processes=2', f'--process_id={process_id}', *overrides],
      env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(processes, timeout=300):
  outputs = []
  for process in processes:
    try:
      outputs.append(process.communicate(timeout=timeout)[0])
    except subprocess.TimeoutExpired:
      for p in processes:
        p.kill()  # SIGKILL: jax.distributed's preemption notifier holds SIGTERM
      raise
  for process, output in zip(processes, outputs):
    assert process.returncode == 0, output[-3000:]
  return outputs


def one_process_run(config):
  """The same global batches (host 0's half, then host 1's) on 4 local devices."""
  source, _, _ = input_pipeline.build_datasets(config)
  shards = [input_pipeline.train_iterator(source, config, shard_index=i, shard_count=2)
            for i in range(2)]
  state = step_lib.replicate(step_lib.create_train_state(config, jax.random.key(config.seed)))
  p_train_step = step_lib.parallel(step_lib.train_step, config)
  for _ in range(STEPS):
    halves = [next(shard) for shard in shards]
    batch = {k: np.concatenate([h[k] for h in halves]) for k in halves[0]}
    state, _ = p_train_step(state, trainer._device_batch(batch))
  return jax.device_get(jax_utils.unreplicate(state))


def test_two_processes_train_like_one_with_four_devices(train_config, tmp_path):
  input_pipeline.build_datasets(train_config)  # build once, before the processes read it
  port = free_port()
  outputs = finish([start(i, port, train_config, tmp_path) for i in range(2)])
  prints = [re.findall(r'process (\d): finished at step (\d+), weights fingerprint (\w+)', out)
            for out in outputs]
  assert [p[0][:2] for p in prints] == [('0', str(STEPS)), ('1', str(STEPS))]
  assert prints[0][0][2] == prints[1][0][2]  # both hosts hold the same weights
  assert '2 local / 4 global cpu devices' in outputs[0]
  # One checkpoint, written jointly, with each host's data-iterator position.
  step_dir = tmp_path / 'checkpoints' / str(STEPS)
  assert sorted(p.name for p in (step_dir / 'data').glob('*.json')) == [
      'process_0-of-2.json', 'process_1-of-2.json']
  # float64: in float32, summation order (2x2 vs 1x4 devices) alone changes a
  # few steps of this tiny network by ~1e-3. Across processes (gloo) the
  # float64 runs agree to ~1e-8 relative; other batches would differ by ~1e-2.
  train_config.model.dtype = train_config.model.param_dtype = 'float64'
  with jax.enable_x64(True):
    saved, _, _ = checkpoint.load(tmp_path / 'checkpoints')
    expected = one_process_run(train_config)
  assert saved['params']['low_level']['conv1']['conv']['kernel'].dtype == np.float64
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9),
               saved, {'params': expected.params, 'batch_stats': expected.batch_stats})
  records = [json.loads(line) for line in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  assert records[-1]['step'] == STEPS
