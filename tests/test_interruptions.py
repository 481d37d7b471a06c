"""Interrupted and failing training runs: real train.py processes, real signals."""
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
from PIL import Image

from jaxcolor import checkpoint

ROOT = pathlib.Path(__file__).resolve().parent.parent
STEPS = 8


def command(config, workdir, *overrides):
  return [sys.executable, '-u', str(ROOT / 'train.py'), '--config', str(ROOT / 'configs/tiny.py'),
          f'--workdir={workdir}', f'--config.data.folder={config.data.folder}',
          '--config.data.val_folder=', f'--config.data.tfds_dir={config.data.tfds_dir}',
          f'--config.num_train_steps={STEPS}', '--config.checkpoint_every_steps=2',
          '--config.log_every_steps=1', *overrides]


def start(config, workdir, *overrides):
  env = {**os.environ, 'PYTHONPATH': str(ROOT)}
  return subprocess.Popen(command(config, workdir, *overrides), env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def run(config, workdir, *overrides):
  process = start(config, workdir, *overrides)
  output = process.communicate(timeout=300)[0]
  return process.returncode, output


def wait_for_line(process, text, timeout=300):
  """Reads the process's output until a line contains `text`; returns all lines read."""
  lines, deadline = [], time.time() + timeout
  while time.time() < deadline:
    line = process.stdout.readline()
    if not line:
      break
    lines.append(line)
    if text in line:
      return lines
  process.kill()
  raise AssertionError(f'never printed {text!r}:\n' + ''.join(lines[-30:]))


def final_params(workdir):
  variables, _, _ = checkpoint.load(workdir / 'checkpoints')
  return variables


def test_sigterm_then_sigkill_then_resume_end_like_a_straight_run(train_config, tmp_path):
  code, output = run(train_config, tmp_path / 'straight')
  assert code == 0, output[-3000:]

  workdir = tmp_path / 'interrupted'
  process = start(train_config, workdir)
  wait_for_line(process, 'step 3/')
  process.send_signal(signal.SIGTERM)  # preemption: save, then a clean exit
  output = process.communicate(timeout=120)[0]
  assert process.returncode == 0, output[-3000:]
  assert 'stopped by SIGTERM at step' in output
  stopped_at = checkpoint.read_meta(workdir / 'checkpoints')['step']
  assert 3 <= stopped_at < STEPS

  process = start(train_config, workdir)
  wait_for_line(process, f'step {stopped_at + 2}/')
  process.kill()  # SIGKILL: no chance to save anything
  process.wait(timeout=60)
  # A checkpoint write cut short leaves a temporary folder; it must be ignored.
  newest = checkpoint.resolve(workdir / 'checkpoints')
  partial = workdir / 'checkpoints' / f'{STEPS}.orbax-checkpoint-tmp-1234'
  shutil.copytree(newest, partial)
  next(partial.rglob('manifest.ocdbt')).write_bytes(b'cut short')

  code, output = run(train_config, workdir)
  assert code == 0, output[-3000:]
  assert 'Resuming from step' in output
  steps = [json.loads(line)['step'] for line in (workdir / 'metrics.jsonl').open()]
  assert steps == list(range(1, STEPS + 1))  # each step once, despite the kill
  straight, resumed = final_params(tmp_path / 'straight'), final_params(workdir)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
               straight, resumed)


def test_diverging_loss_stops_and_keeps_the_last_good_checkpoint(train_config, tmp_path):
  code, _ = run(train_config, tmp_path, '--config.num_train_steps=2')
  assert code == 0
  good = final_params(tmp_path)
  code, output = run(train_config, tmp_path, '--config.learning_rate=1e30')
  assert code != 0
  assert re.search(r'error: training diverged at step [34] \(loss', output), output[-2000:]
  assert 'last good checkpoint, step 2' in output
  assert 'Traceback' not in output
  assert checkpoint.read_meta(tmp_path / 'checkpoints')['step'] == 2
  jax.tree.map(np.testing.assert_array_equal, good, final_params(tmp_path))


def test_sigterm_during_validation_saves_first_and_cuts_it_short(train_config, tmp_path):
  """Validation at step 2 over many photos; SIGTERM arrives while it runs. The run
  saves step 2 at once (no checkpoint was due) and logs no validation for it."""
  val = tmp_path / 'val'
  val.mkdir()
  for i in range(200):
    x = np.random.default_rng(i).integers(0, 255, (40, 40, 3), np.uint8)
    Image.fromarray(x).save(val / f'{i}.png')
  workdir = tmp_path / 'run'
  process = start(train_config, workdir, f'--config.data.val_folder={val}',
                  '--config.eval_every_steps=2', '--config.eval_batches=1000',
                  '--config.checkpoint_every_steps=1000')
  wait_for_line(process, 'step 2/')
  process.send_signal(signal.SIGTERM)
  output = process.communicate(timeout=120)[0]
  assert process.returncode == 0, output[-3000:]
  assert 'stopped by SIGTERM at step 2;' in output, output[-3000:]
  assert checkpoint.read_meta(workdir / 'checkpoints')['step'] == 2
  records = [json.loads(line) for line in (workdir / 'metrics.jsonl').open()]
  assert [r['split'] for r in records] == ['train', 'train']
