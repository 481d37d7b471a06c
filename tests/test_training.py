"""Training: pmapped Adadelta steps on real photos, device equivalence, resume, profiles."""
import jax
import numpy as np
import pytest

from jaxcolor import checkpoint
from jaxcolor.training import config_checks
from jaxcolor.training import input_pipeline
from jaxcolor.training import train_step as step_lib
from jaxcolor.training import trainer


def leaves_close(a, b, **tolerance):
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, **tolerance), a, b)


@pytest.fixture
def data(train_config):
  train_source, _, info = input_pipeline.build_datasets(train_config)
  assert info.class_names == ('astronaut', 'chelsea', 'coffee', 'rocket')
  return train_source


def test_pmapped_steps_lower_the_loss_and_keep_replicas_equal(train_config, data):
  assert jax.local_device_count() == 4
  batches = input_pipeline.train_iterator(data, train_config)
  state = step_lib.replicate(step_lib.create_train_state(train_config, jax.random.key(0)))
  p_train_step = step_lib.parallel(step_lib.train_step, train_config, donate=True)
  losses = []
  for _ in range(20):
    state, metrics = p_train_step(state, trainer._device_batch(next(batches)))
    losses.append(float(metrics['loss'][0]))
  assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5]), losses
  for leaf in jax.tree.leaves((state.params, state.batch_stats, state.opt_state)):
    for replica in leaf[1:]:
      np.testing.assert_array_equal(replica, leaf[0])


def test_one_adadelta_step_goes_downhill(train_config, data):
  batch = trainer._device_batch(next(input_pipeline.train_iterator(data, train_config)))
  state = step_lib.replicate(step_lib.create_train_state(train_config, jax.random.key(0)))
  p_train_step = step_lib.parallel(step_lib.train_step, train_config)
  stepped, before = p_train_step(state, batch)
  # Same batch again from the stepped params (BatchNorm uses batch statistics).
  _, after = p_train_step(stepped, batch)
  assert float(after['loss'][0]) < float(before['loss'][0])


def test_four_devices_compute_the_one_device_step(train_config, data):
  """Exact in float64. (In float32 the summation order differs, and a few steps
  of this tiny network turn that into visible differences.)"""
  batch = next(input_pipeline.train_iterator(data, train_config))
  assert len(set(batch['label'])) > 1  # the cross-entropy term is exercised
  train_config.model.dtype = train_config.model.param_dtype = 'float64'
  with jax.enable_x64(True):
    state = step_lib.create_train_state(train_config, jax.random.key(0))
    results = []
    for count in (1, 4):
      devices = jax.devices()[:count]
      p_train_step = step_lib.parallel(step_lib.train_step, train_config, devices=devices)
      split = jax.tree.map(lambda x: x.reshape(count, -1, *x.shape[1:]), batch)
      stepped, metrics = p_train_step(step_lib.replicate(state, devices), split)
      results.append(jax.device_get((stepped.params, stepped.batch_stats, metrics)))
  one, four = [jax.tree.map(lambda x: x[0], r) for r in results]
  assert one[0]['low_level']['conv1']['conv']['kernel'].dtype == np.float64
  leaves_close(one, four, rtol=1e-10, atol=1e-12)
  moved = jax.tree.map(lambda a, b: np.abs(a - b).max(), one[0], state.params)
  assert max(jax.tree.leaves(moved)) > 1e-3  # the step did move the weights


def _run(config, workdir, steps):
  config = config.copy_and_resolve_references()
  config.num_train_steps = steps
  return trainer.train_and_evaluate(config, workdir)


def test_resume_ends_with_the_params_of_a_straight_run(train_config, tmp_path):
  train_config.checkpoint_every_steps = 3
  train_config.profile_steps = (2, 3)
  straight = _run(train_config, tmp_path / 'straight', 6)
  _run(train_config, tmp_path / 'resumed', 3)
  resumed = _run(train_config, tmp_path / 'resumed', 6)  # the same command again
  leaves_close((straight.params, straight.batch_stats),
               (resumed.params, resumed.batch_stats), rtol=1e-6, atol=1e-7)
  # What a run leaves in its workdir.
  workdir = tmp_path / 'straight'
  assert sorted(p.name for p in (workdir / 'checkpoints').iterdir()) == ['3', '6']
  records = [line for line in (workdir / 'metrics.jsonl').read_text().splitlines()]
  assert any('"split": "val"' in r and '"psnr"' in r for r in records)
  assert (workdir / 'curves.png').stat().st_size > 1000
  assert list((workdir / 'profile').rglob('*.xplane.pb'))
  assert list((workdir / 'profile').rglob('*.trace.json.gz'))
  variables, model_config, class_names = checkpoint.load(workdir / 'checkpoints')
  assert class_names == ['astronaut', 'chelsea', 'coffee', 'rocket']
  leaves_close(variables['params'], straight.params)


def test_the_step_traces_once(train_config, data):
  """Steps after the first reuse its compilation: their state comes back placed as
  it went in."""
  traces = []

  def counted(state, batch, **constants):
    traces.append(1)
    return step_lib.train_step(state, batch, **constants)

  batches = input_pipeline.train_iterator(data, train_config)
  state = step_lib.replicate(step_lib.create_train_state(train_config, jax.random.key(0)))
  p_train_step = step_lib.parallel(counted, train_config, donate=True)
  for _ in range(3):
    state, _ = p_train_step(state, trainer._device_batch(next(batches)))
  assert len(traces) == 1


def test_crops_larger_than_the_global_input_with_rarity_weights(train_config, tmp_path):
  """The global path sees each 48x48 crop resized to 32x32, the local path the crop; the
  MSE is weighted by colour rarity, from a table made once and kept in the workdir."""
  train_config.data.crop_size = 48
  train_config.eval_every_steps = 2
  train_config.rarity_power, train_config.rarity_photos = 0.5, 16
  state = _run(train_config, tmp_path, 2)
  assert int(state.step) == 2
  records = (tmp_path / 'metrics.jsonl').read_text()
  assert '"split": "val"' in records
  with np.load(tmp_path / 'rarity_weights.npz') as kept:
    assert kept['table'].shape == (22, 22) and kept['table'].min() < 1 < kept['table'].max()
  train_config.rarity_power = 1.0  # resuming with other weights would change the loss
  with pytest.raises(config_checks.ConfigError, match='rarity_weights.npz was made with'):
    _run(train_config, tmp_path, 3)

