"""Config mistakes are one-line errors naming the field, before anything is built."""
import pathlib
import subprocess
import sys
import time

import pytest

from jaxcolor.training import config_checks
from jaxcolor.training import trainer

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.mark.parametrize('field, value, message', [
    ('data.crop_size', 36, 'config.data.crop_size=36: must be a positive multiple of 8'),
    ('data.crop_size', 0, 'config.data.crop_size=0: must be a positive multiple of 8'),
    ('model.global_size', 48, 'config.model.global_size=48: must be a positive multiple of 32'),
    ('batch_size', 6, 'config.batch_size=6: must split evenly over 1 host(s) x 4 device(s)'),
    ('data.folder', '/no/such/photos', "config.data.folder='/no/such/photos': no such folder"),
    ('data.val_folder', '/no/val', "config.data.val_folder='/no/val': no such folder"),
    ('data.labels', 'scenes', "config.data.labels='scenes': must be one of"),
    ('data.global_view', 'whole', "config.data.global_view='whole': must be one of"),
])
def test_bad_field_is_named(train_config, field, value, message):
  section, key = field.rsplit('.', 1) if '.' in field else ('', field)
  (train_config[section] if section else train_config)[key] = value
  with pytest.raises(config_checks.ConfigError) as error:
    trainer.train_and_evaluate(train_config, '/nonexistent/never/created')
  assert str(error.value).startswith(message) and '\n' not in str(error.value)
  assert not pathlib.Path('/nonexistent/never/created').exists()


def test_batch_must_split_over_hosts(train_config):
  train_config.batch_size = 12
  config_checks.check(train_config, process_count=3, local_device_count=4)
  with pytest.raises(config_checks.ConfigError, match='over 2 host'):
    config_checks.check(train_config, process_count=2, local_device_count=4)


def test_mix_source_folders_are_checked(train_config):
  train_config.data.source = 'mix'
  train_config.data.sources = {'good': {'folder': train_config.data.folder, 'weight': 1.0},
                               'gone': {'folder': '/no/such/source', 'weight': 1.0}}
  with pytest.raises(config_checks.ConfigError,
                     match=r"config.data.sources.gone.folder='/no/such/source': no such folder"):
    config_checks.check(train_config)


def test_labels_must_fit_the_data(train_config, tmp_path):
  train_config.data.labels = 'teacher'
  with pytest.raises(config_checks.ConfigError,
                     match=r'config.data.teacher_labels=.*teacher_labels.tsv.: no teacher labels '
                           r'there; make them with `python label.py --folder'):
    config_checks.check(train_config)
  train_config.data.source = 'places365'
  with pytest.raises(config_checks.ConfigError, match="Places365 has only its own"):
    config_checks.check(train_config)


def test_a_source_cannot_be_named_like_a_validation_set(train_config):
  train_config.data.source = 'mix'
  train_config.data.sources = {'val': {'folder': train_config.data.folder, 'weight': 1.0}}
  with pytest.raises(config_checks.ConfigError, match=r"must not be 'val' or hold '/'"):
    config_checks.check(train_config)


def test_train_py_prints_one_line_and_fails_fast(train_config, tmp_path):
  start = time.time()
  result = subprocess.run(
      [sys.executable, str(ROOT / 'train.py'), '--config', str(ROOT / 'configs/tiny.py'),
       f'--workdir={tmp_path / "run"}', f'--config.data.folder={train_config.data.folder}',
       '--config.data.crop_size=30'], capture_output=True, text=True, timeout=120)
  assert result.returncode == 1
  assert result.stderr.strip() == ('error: config.data.crop_size=30: must be a positive '
                                   "multiple of 8, the local path's stride")
  assert not (tmp_path / 'run').exists() and time.time() - start < 60
