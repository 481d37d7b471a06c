"""Orbax checkpoints: round trip, training-folder layout, clear errors."""
import shutil

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from jaxcolor import checkpoint
from jaxcolor.commands import average


def test_round_trip_restores_every_array(tiny_checkpoint, tiny_config, tiny_variables):
  variables, model_config, class_names = checkpoint.load(tiny_checkpoint)
  assert model_config.to_dict() == tiny_config.model.to_dict()
  assert class_names == ['beach', 'forest', 'street', 'room']
  jax.tree.map(np.testing.assert_array_equal, variables, tiny_variables)


def test_never_replaces_an_existing_checkpoint(tiny_checkpoint, tiny_config, tiny_variables):
  with pytest.raises(checkpoint.CheckpointError, match='already exists'):
    checkpoint.save(tiny_checkpoint, tiny_variables, tiny_config.model)


def test_mismatching_config_names_the_first_layer(tiny_checkpoint, tiny_config):
  wider = tiny_config.model.copy_and_resolve_references()
  wider.width = 0.25
  with pytest.raises(checkpoint.CheckpointError,
                     match=r'classifier/fc1/bn/.*checkpoint has shape \(32,\), model '
                           r'expects shape \(64,\)'):
    checkpoint.load(tiny_checkpoint, wider)
  more_classes = tiny_config.model.copy_and_resolve_references()
  more_classes.num_classes = 7
  with pytest.raises(checkpoint.CheckpointError, match='classifier/logits/bias'):
    checkpoint.load(tiny_checkpoint, more_classes)


def test_training_folder_resolves_to_its_newest_finished_step(
    tmp_path, tiny_config, tiny_variables):
  options = ocp.CheckpointManagerOptions(max_to_keep=3)
  with ocp.CheckpointManager(tmp_path, options=options) as manager:
    for step in (10, 20):
      variables = jax.tree.map(lambda x, s=step: x + s, tiny_variables)
      manager.save(step, args=ocp.args.Composite(
          **checkpoint.save_args(variables, tiny_config.model, step=step)))
  (tmp_path / '30.orbax-checkpoint-tmp-123').mkdir()  # an interrupted write
  assert checkpoint.resolve(tmp_path) == tmp_path / '20'
  variables, _, _ = checkpoint.load(tmp_path)
  np.testing.assert_array_equal(
      variables['params']['low_level']['conv1']['conv']['kernel'],
      tiny_variables['params']['low_level']['conv1']['conv']['kernel'] + 20)


def test_folder_that_is_not_a_checkpoint(tmp_path):
  (tmp_path / 'notes.txt').write_text('hello')
  with pytest.raises(checkpoint.CheckpointError, match='not a jaxcolor checkpoint'):
    checkpoint.load(tmp_path)
  with pytest.raises(checkpoint.CheckpointError, match='no such checkpoint folder'):
    checkpoint.load(tmp_path / 'missing')


def test_truncated_checkpoint_is_a_clear_error(tmp_path, tiny_checkpoint):
  damaged = tmp_path / 'damaged'
  shutil.copytree(tiny_checkpoint, damaged)
  for data_file in (damaged / checkpoint.MODEL).rglob('d/*'):
    data_file.write_bytes(data_file.read_bytes()[:10])
  with pytest.raises(checkpoint.CheckpointError, match='damaged'):
    checkpoint.load(damaged)
  shutil.rmtree(damaged / checkpoint.META)
  with pytest.raises(checkpoint.CheckpointError, match='not a jaxcolor checkpoint'):
    checkpoint.load(damaged)


def test_export_command(tiny_checkpoint, tiny_variables, tmp_path, capsys):
  """python average.py SOURCE DESTINATION, in-process."""
  with pytest.raises(SystemExit) as exit_:
    average.main(['--help'])
  assert exit_.value.code == 0
  assert 'usage: ' in capsys.readouterr().out
  destination = tmp_path / 'exported'
  assert average.main([str(tiny_checkpoint), str(destination)]) == 0
  variables, _, class_names = checkpoint.load(destination)
  jax.tree.map(np.testing.assert_array_equal, variables, tiny_variables)
  assert class_names == ['beach', 'forest', 'street', 'room']
  assert average.main([str(tiny_checkpoint), str(destination)]) == 1
  assert 'already exists; choose a new folder' in capsys.readouterr().err


def test_average_command(tmp_path, tiny_checkpoint, tiny_config, tiny_variables, capsys):
  """Several sources: the element-wise mean of weights and statistics, newest step."""
  shifted = tmp_path / 'shifted'
  checkpoint.save(shifted, jax.tree.map(lambda x: x + 3, tiny_variables), tiny_config.model,
                  ['beach', 'forest', 'street', 'room'], step=40)
  destination = tmp_path / 'averaged'
  assert average.main([str(tiny_checkpoint), str(shifted), str(destination)]) == 0
  variables, _, class_names = checkpoint.load(destination)
  jax.tree.map(lambda got, want: np.testing.assert_allclose(got, want + 1.5, atol=1e-5),
               variables, tiny_variables)
  assert class_names == ['beach', 'forest', 'street', 'room']
  assert checkpoint.read_meta(destination)['step'] == 40

  other_classes = tmp_path / 'other_classes'
  checkpoint.save(other_classes, tiny_variables, tiny_config.model, ['a', 'b', 'c', 'd'])
  assert average.main([str(tiny_checkpoint), str(other_classes), str(tmp_path / 'x')]) == 1
  assert 'other_classes: different class names' in capsys.readouterr().err
  assert not (tmp_path / 'x').exists()
