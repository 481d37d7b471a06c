"""infer.py end to end, in a subprocess, on real photo files."""
import hashlib
import io
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import photo
import infer
from jaxcolor import batch
from jaxcolor import checkpoint
from jaxcolor import inference

ROOT = pathlib.Path(__file__).resolve().parent.parent


def run_infer(*args, cwd=None):
  env = {**os.environ, 'PYTHONPATH': str(ROOT)}
  return subprocess.run([sys.executable, str(ROOT / 'infer.py'), *map(str, args)],
                        capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def digest(folder):
  return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


@pytest.fixture
def photos(tmp_path):
  """A folder of real photos of odd sizes, a grey scan, a broken and a non-image file."""
  folder = tmp_path / 'in put é'  # spaces and non-ASCII in the path
  folder.mkdir()
  Image.fromarray(photo('astronaut')[:101, :77]).save(folder / 'astronaut.jpg', quality=90)
  Image.fromarray(photo('chelsea')[:61, :90]).convert('L').save(folder / 'chelsea.png')
  Image.fromarray(photo('coffee')[:40, :40]).save(folder / 'coffee.jpg')
  jpeg = (folder / 'coffee.jpg').read_bytes()
  (folder / 'coffee.jpg').unlink()
  (folder / 'truncated.jpg').write_bytes(jpeg[:len(jpeg) // 3])
  (folder / 'not_an_image.jpg').write_text('this is a text file')
  (folder / 'readme.txt').write_text('not an image extension: skipped by folder mode')
  return folder


def test_batch_colorizes_good_files_and_reports_bad_ones(photos, tiny_checkpoint, tmp_path):
  before = digest(photos)
  out = tmp_path / 'out'
  result = run_infer('--image', photos, '--checkpoint', tiny_checkpoint, '--output', out,
                     '--topk', 2)
  assert result.returncode == 1, result.stderr  # some inputs failed
  assert digest(photos) == before  # inputs untouched
  assert sorted(p.name for p in out.iterdir()) == ['astronaut.jpg', 'chelsea.png']
  assert Image.open(out / 'astronaut.jpg').size == (77, 101)
  assert Image.open(out / 'chelsea.png').size == (90, 61)
  assert Image.open(out / 'chelsea.png').mode == 'RGB'
  errors = [line for line in result.stderr.splitlines() if line.startswith('error:')]
  assert len(errors) == 2
  assert any('truncated.jpg' in e and 'damaged' in e for e in errors)
  assert any('not_an_image.jpg' in e and 'not an image' in e for e in errors)
  assert 'colour inputs are colorized from their luminance' in result.stderr
  assert '2 of 4 inputs failed' in result.stderr
  assert any('astronaut.jpg' in line and '%' in line for line in result.stdout.splitlines())


def test_existing_outputs_are_kept_and_side_by_side(photos, tiny_checkpoint, tmp_path):
  source = photos / 'astronaut.jpg'
  target = tmp_path / 'result.png'
  target.write_bytes(b'precious')
  result = run_infer('--image', source, '--checkpoint', tiny_checkpoint, '--output', target)
  assert result.returncode == 1 and 'already exists' in result.stderr
  assert target.read_bytes() == b'precious'

  result = run_infer('--image', source, '--checkpoint', tiny_checkpoint, '--output', target,
                     '--overwrite', '--side-by-side')
  assert result.returncode == 0, result.stderr
  assert Image.open(target).size == (2 * 77, 101)


def test_default_output_folder(photos, tiny_checkpoint, tmp_path):
  result = run_infer('--image', photos / 'chelsea.png', '--checkpoint', tiny_checkpoint,
                     cwd=tmp_path)
  assert result.returncode == 0, result.stderr
  assert Image.open(tmp_path / 'colorized' / 'chelsea.png').size == (90, 61)


def test_without_a_model_says_how_to_get_one(photos, tmp_path, monkeypatch, capsys):
  """A copy of jaxcolor without its bundled model (e.g. a stripped install)."""
  monkeypatch.setattr(checkpoint, 'BUNDLED', tmp_path / 'no_model_here')
  monkeypatch.chdir(tmp_path)
  assert infer.main(['--image', str(photos / 'chelsea.png')]) == 2
  message = capsys.readouterr().err
  assert 'no trained model is available' in message and 'train.py' in message
  assert not (tmp_path / 'colorized').exists()


def test_output_folder_that_cannot_be_written(photos, tiny_checkpoint, tmp_path):
  blocker = tmp_path / 'a_file'
  blocker.write_text('not a folder')
  result = run_infer('--image', photos / 'chelsea.png', photos / 'astronaut.jpg',
                     '--checkpoint', tiny_checkpoint, '--output', blocker / 'out')
  assert result.returncode == 1
  errors = [line for line in result.stderr.splitlines() if line.startswith('error:')]
  assert len(errors) == 2 and all('cannot write' in e for e in errors), result.stderr
  assert blocker.read_text() == 'not a folder'


def test_an_input_is_never_an_output(photos, tiny_config, tiny_variables):
  predictor = inference.Predictor(tiny_variables, tiny_config.model)
  source = photos / 'chelsea.png'
  before = source.read_bytes()
  messages = io.StringIO()
  failures = batch.colorize_files(predictor, {source: source}, overwrite=True,
                                  reporter=batch.Reporter(1, messages), out=io.StringIO())
  assert failures == 1 and 'is one of the inputs' in messages.getvalue()
  assert source.read_bytes() == before


def test_tiled_output_matches_untiled(tiny_checkpoint, tmp_path):
  source = tmp_path / 'big.png'
  Image.fromarray(photo('astronaut')[:203, :150]).save(source)
  outputs = {}
  for tile in (0, 64):
    out = tmp_path / f'tile{tile}.png'
    result = run_infer('--image', source, '--checkpoint', tiny_checkpoint, '--output', out,
                       '--tile', tile)
    assert result.returncode == 0, result.stderr
    outputs[tile] = np.asarray(Image.open(out), np.int16)
  assert np.abs(outputs[0] - outputs[64]).max() <= 1  # 8-bit rounding of equal floats
  bad = run_infer('--image', source, '--checkpoint', tiny_checkpoint, '--tile', 30)
  assert bad.returncode == 2 and '--tile must be 0 or a positive multiple of 8' in bad.stderr
