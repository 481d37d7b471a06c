"""The training loop: data, pmapped steps, checkpoints, metrics, profiles.

Everything lands in the workdir:
  checkpoints/<step>/   orbax: model, optimizer, data iterator, meta
  metrics.jsonl         one JSON object per logged step and per evaluation
  curves.png            training and validation curves (written at the end)
  profile/              jax.profiler trace, when config.profile_steps is set
Running the same command again resumes from the newest checkpoint. SIGTERM
saves a checkpoint and stops; a non-finite loss stops without saving.
"""
import hashlib
import json
import math
import pathlib
import signal
import time

from absl import logging
from flax import jax_utils
import grain
import jax
from jax.experimental import multihost_utils
import numpy as np
import orbax.checkpoint as ocp

from jaxcolor import checkpoint
from jaxcolor import encoder as encoder_lib
from jaxcolor import hints as hints_lib
from jaxcolor import progress
from jaxcolor.training import config_checks
from jaxcolor.training import input_pipeline
from jaxcolor.training import plots
from jaxcolor.training import rarity
from jaxcolor.training import train_step as step_lib


def _device_batch(batch):
  """Per-host batch (B, ...) -> (local devices, B / devices, ...) for pmap."""
  devices = jax.local_device_count()
  return jax.tree.map(lambda x: x.reshape(devices, -1, *x.shape[1:]), batch)


def _padded_eval_batch(batch, size):
  """Pads a short last batch to `size` examples with weight 0."""
  count = len(batch['label'])
  padded = {k: np.concatenate([v, np.zeros((size - count, *v.shape[1:]), v.dtype)])
            for k, v in batch.items()}
  padded['weight'] = (np.arange(size) < count).astype(np.float32)
  return padded


def _model_config(config, info):
  """The config's model section, with the number of classes the data (or the
  pretrained encoder, which names the scenes then) has."""
  model_config = config.model.copy_and_resolve_references()
  if model_config.get('encoder'):
    model_config.num_classes = len(encoder_lib.class_names())
  elif info.num_classes and info.num_classes != model_config.num_classes:
    logging.info('The data has %d classes; using that instead of model.num_classes=%d',
                 info.num_classes, model_config.num_classes)
    model_config.num_classes = info.num_classes
  return model_config


class Logger:
  """Metrics to JSON lines (process 0 only) and a readable progress line."""

  def __init__(self, workdir, total_steps, batch_size):
    self.path = workdir / 'metrics.jsonl'
    self.total_steps, self.batch_size = total_steps, batch_size
    self.last_time, self.last_step = time.time(), None

  def forget_after(self, step):
    """Drops records of steps after `step` (logged by a run killed before saving them)."""
    if jax.process_index() == 0 and self.path.exists():
      lines = self.path.read_text().splitlines(keepends=True)
      kept = self.path.with_suffix('.jsonl.tmp')
      kept.write_text(''.join(line for line in lines if json.loads(line)['step'] <= step))
      kept.replace(self.path)  # atomic: a crash here leaves the old file

  def write(self, record):
    if jax.process_index() == 0:
      with self.path.open('a') as f:
        f.write(json.dumps(record) + '\n')

  def train(self, step, metrics):
    now = time.time()
    if self.last_step is not None:
      rate = (step - self.last_step) * self.batch_size / (now - self.last_time)
      eta = (self.total_steps - step) * self.batch_size / rate
      metrics = {**metrics, 'images_per_s': rate}
      timing = f'{rate:6.1f} img/s  eta {progress.hours_minutes_seconds(eta)}'
    else:
      timing = ''
    self.last_time, self.last_step = now, step
    self.write({'step': step, 'split': 'train', **metrics})
    self.say(f'step {step}/{self.total_steps}  loss {metrics["loss"]:.5f}  '
             f'mse {metrics["mse"]:.5f}  {timing}')

  def eval(self, step, name, metrics):
    self.write({'step': step, 'split': 'val', 'set': name, **metrics})
    accuracy = f'  top-1 {metrics["accuracy"]:.1%}' if metrics['labelled'] else ''
    self.say(f'step {step}  validation {name}: loss {metrics["loss"]:.5f}  '
             f'psnr {metrics["psnr"]:.2f} dB{accuracy}')
    self.restart_clock(step)

  def restart_clock(self, step):
    """Leaves evaluation and checkpoint time out of the images/s figure."""
    self.last_time, self.last_step = time.time(), step

  def say(self, line):
    if jax.process_index() == 0:
      print(line, flush=True)


def evaluate(p_eval_step, state, part, config, abort=lambda: False):
  """Summed metrics over (at most config.eval_batches of) one validation set;
  None when `abort()` turned true before the last batch."""
  size = input_pipeline.per_host_batch_size(config)
  totals = None
  for i, batch in enumerate(input_pipeline.eval_batches(part, config)):
    if i == config.eval_batches:
      break
    if abort():
      return None
    sums = p_eval_step(state, _device_batch(_padded_eval_batch(batch, size)))
    sums = jax.tree.map(lambda x: float(x[0]), sums)
    totals = sums if totals is None else {k: totals[k] + sums[k] for k in totals}
  means = step_lib.summarize(totals, config.alpha)
  return {**{k: float(v) for k, v in means.items()}, 'labelled': float(totals['labelled'])}


def _initialise_from(path, state, model_config):
  """`state` with the weights and BatchNorm statistics of the checkpoint at `path`;
  a model with hints may start from one without (hints.with_hint_inputs)."""
  variables, saved_config, _ = checkpoint.load(path)
  if model_config.get('hints') and not saved_config.get('hints'):
    variables = hints_lib.with_hint_inputs(variables)
  fresh = {'params': state.params, 'batch_stats': state.batch_stats}
  try:
    checkpoint.check_fits(fresh, variables)
  except checkpoint.CheckpointError as e:
    raise config_checks.ConfigError(f'config.init_from={str(path)!r}: {e}') from None
  logging.info('Starting from the weights of %s', path)
  return state.replace(params=variables['params'], batch_stats=variables['batch_stats'])


def _save(manager, step, state, data_iterator, model_config, class_names):
  host_state = jax.device_get(jax_utils.unreplicate(state))
  variables = {'params': host_state.params, 'batch_stats': host_state.batch_stats}
  items = checkpoint.save_args(variables, model_config, class_names, step)
  items['optimizer'] = ocp.args.StandardSave(host_state.opt_state)
  items['data'] = grain.checkpoint.CheckpointSave(data_iterator)
  manager.save(step, args=ocp.args.Composite(**items))


def _restore(manager, state, data_iterator):
  """The newest checkpoint's state and iterator position, or the inputs unchanged."""
  step = manager.latest_step()
  if step is None:
    return state
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
  variables = {'params': abstract.params, 'batch_stats': abstract.batch_stats}
  try:
    restored = manager.restore(step, args=ocp.args.Composite(
        model=ocp.args.StandardRestore(variables),
        optimizer=ocp.args.StandardRestore(abstract.opt_state),
        data=grain.checkpoint.CheckpointRestore(data_iterator)))
  except ValueError as e:  # orbax: a stored shape the config's model does not have
    raise config_checks.ConfigError(
        f'{manager.directory / str(step)} does not fit this config\'s model ({e}); resume with '
        'the config that run was started with, or give another --workdir') from None
  print(f'Resuming from step {step} in {manager.directory}', flush=True)
  return state.replace(step=step, params=restored.model['params'],
                       batch_stats=restored.model['batch_stats'],
                       opt_state=restored.optimizer)


def _rarity_table(config, train_parts, workdir):
  """The colour-rarity loss weights (None when config.rarity_power is 0), made once
  from config.rarity_photos training crops and kept in the workdir, so that a
  resumed run uses the same table; a kept table made with other settings is an error."""
  if not config.get('rarity_power', 0.0):
    return None
  settings = np.array([config.rarity_power, config.rarity_mix, config.rarity_photos], np.float64)
  path = workdir / 'rarity_weights.npz'
  if jax.process_index() == 0 and not path.exists():
    sample = config.copy_and_resolve_references()
    sample.data.num_workers = 0
    batches = input_pipeline.train_iterator(train_parts, sample, seed=config.seed + 1,
                                            shard_index=0, shard_count=1)
    count = -(-config.rarity_photos // config.batch_size)
    counts = rarity.histogram(step_lib.half_resolution(next(batches)['ab']) for _ in range(count))
    table = rarity.weights(counts, mix=config.rarity_mix, power=config.rarity_power)
    partial = workdir / 'rarity_weights.tmp.npz'
    np.savez(partial, table=table, settings=settings)
    partial.replace(path)  # whole or absent, for hosts that read it
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices('jaxcolor: rarity weights written')
  with np.load(path) as kept:
    if not np.array_equal(kept['settings'], settings):
      raise config_checks.ConfigError(
          f'{path} was made with rarity_power, rarity_mix, rarity_photos = '
          f'{kept["settings"].tolist()}, not {settings.tolist()}: use the same settings to '
          'resume, or another --workdir')
    return kept['table']


def fingerprint(state):
  """A short hash of the weights and BatchNorm statistics (bitwise)."""
  digest = hashlib.sha256()
  for leaf in jax.tree.leaves((state.params, state.batch_stats)):
    digest.update(np.ascontiguousarray(leaf).tobytes())
  return digest.hexdigest()[:16]


class TrainingDiverged(RuntimeError):
  """The loss, the gradients or the weights stopped being finite numbers."""


class Preemption:
  """Notices SIGTERM (the preemption signal). With several processes JAX's
  distributed runtime owns SIGTERM and all processes agree on the step to stop."""

  def __init__(self):
    self.requested = False
    self.previous = None
    if jax.process_count() == 1:
      self.previous = signal.signal(signal.SIGTERM, self._request)

  def _request(self, signum, frame):
    del signum, frame
    self.requested = True

  def reached(self, step):
    if jax.process_count() > 1:
      return multihost_utils.reached_preemption_sync_point(step)
    return self.requested

  def pending(self):
    """Whether to cut work short now. Only one process can: several must keep
    running the same collectives until they agree at a step (`reached`)."""
    return jax.process_count() == 1 and self.requested

  def close(self):
    if self.previous is not None:
      signal.signal(signal.SIGTERM, self.previous)


def _check_finite(metrics, step, manager):
  """Raises TrainingDiverged (before anything is saved) on a non-finite loss, gradient
  or weight norm."""
  values = {k: float(metrics[k][0]) for k in ('loss', 'grad_norm', 'param_norm')}
  if not all(math.isfinite(v) for v in values.values()):
    raise TrainingDiverged(
        f'training diverged at step {step} (loss {values["loss"]}, gradient norm '
        f'{values["grad_norm"]}, weight norm {values["param_norm"]}); nothing was saved from '
        f'it. The last good checkpoint, step {manager.latest_step()}, is in '
        f'{manager.directory}. Lower --config.learning_rate or look for broken data, then '
        'rerun to resume from it.')


def train_and_evaluate(config, workdir):
  """Trains `config` in `workdir` until config.num_train_steps; returns the final state.

  Resumes from the newest checkpoint in the workdir. On SIGTERM it saves a
  checkpoint and returns early; on a non-finite loss it raises TrainingDiverged.
  """
  config_checks.check(config)
  workdir = pathlib.Path(workdir).expanduser().absolute()
  workdir.mkdir(parents=True, exist_ok=True)
  train_parts, val_parts, info = input_pipeline.build_datasets(config)
  model_config = _model_config(config, info)
  class_names = encoder_lib.class_names() if model_config.get('encoder') else info.class_names
  config = config.copy_and_resolve_references()
  config.model = model_config

  state = step_lib.create_train_state(config, jax.random.key(config.seed))
  data_iterator = input_pipeline.train_iterator(train_parts, config)
  options = ocp.CheckpointManagerOptions(max_to_keep=config.keep_checkpoints, create=True)
  manager = ocp.CheckpointManager(workdir / 'checkpoints', options=options)
  if config.get('init_from') and manager.latest_step() is None:
    state = _initialise_from(config.init_from, state, model_config)
  state = _restore(manager, state, data_iterator)

  p_train_step = step_lib.parallel(step_lib.train_step, config, donate=True,
                                   ab_weights=_rarity_table(config, train_parts, workdir))
  p_eval_step = step_lib.parallel(step_lib.eval_step, config)
  state = step_lib.replicate(state)
  logger = Logger(workdir, config.num_train_steps, config.batch_size)
  logger.forget_after(int(state.step[0]))
  preemption = Preemption()
  profile_first, profile_last = config.profile_steps
  try:
    for step in range(int(state.step[0]) + 1, config.num_train_steps + 1):
      if step == profile_first:
        jax.profiler.start_trace(str(workdir / 'profile'), create_perfetto_trace=True)
      with jax.profiler.StepTraceAnnotation('train', step_num=step):
        state, metrics = p_train_step(state, _device_batch(next(data_iterator)))
      if jax.process_count() > 1:
        # Several CPU processes deadlock when many steps are queued: wait for each.
        metrics = jax.block_until_ready(metrics)
      if step == profile_last:
        jax.profiler.stop_trace()
      stop = step == config.num_train_steps or preemption.reached(step)
      preempted = stop and step < config.num_train_steps
      log = step % config.log_every_steps == 0 or stop
      save = step % config.checkpoint_every_steps == 0 or stop
      if log or save:
        _check_finite(metrics, step, manager)
      if log:
        logger.train(step, {k: float(v[0]) for k, v in metrics.items()})
      if save:  # before validation: a preemption's grace period goes to saving
        _save(manager, step, state, data_iterator, model_config, class_names)
        logger.restart_clock(step)
      if not preempted and (step % config.eval_every_steps == 0 or
                            step == config.num_train_steps):
        for name, part in val_parts.items():
          val_metrics = evaluate(p_eval_step, state, part, config, abort=preemption.pending)
          if val_metrics is None:
            break
          logger.eval(step, name, val_metrics)
      if preempted or (step < config.num_train_steps and preemption.pending()):
        if not save:  # SIGTERM came during validation
          _check_finite(metrics, step, manager)
          _save(manager, step, state, data_iterator, model_config, class_names)
        logger.say(f'stopped by SIGTERM at step {step}; checkpoint saved in '
                   f'{manager.directory}. Rerun the same command to resume.')
        break
  finally:
    preemption.close()
    manager.wait_until_finished()
    manager.close()
  if jax.process_index() == 0 and logger.path.exists():
    plots.plot_curves(logger.path, workdir / 'curves.png')
  return jax.device_get(jax_utils.unreplicate(state))
