"""infer.py on real photo files: once as a user runs it (a subprocess), otherwise in-process."""
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
from jaxcolor.apps import batch
from jaxcolor import checkpoint
from jaxcolor.commands import infer
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


def test_existing_outputs_are_kept_and_side_by_side(photos, tiny_checkpoint, tmp_path, capsys):
  source = photos / 'astronaut.jpg'
  target = tmp_path / 'result.png'
  target.write_bytes(b'precious')
  assert infer.main(['--image', str(source), '--checkpoint', str(tiny_checkpoint),
                     '--output', str(target)]) == 1
  assert 'already exists' in capsys.readouterr().err
  assert target.read_bytes() == b'precious'

  assert infer.main(['--image', str(source), '--checkpoint', str(tiny_checkpoint),
                     '--output', str(target), '--overwrite', '--side-by-side']) == 0
  assert Image.open(target).size == (2 * 77, 101)


def test_default_output_folder(photos, tiny_checkpoint, tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  assert infer.main(['--image', str(photos / 'chelsea.png'),
                     '--checkpoint', str(tiny_checkpoint)]) == 0
  assert Image.open(tmp_path / 'colorized' / 'chelsea.png').size == (90, 61)


def test_without_a_model_says_how_to_get_one(photos, tmp_path, monkeypatch, capsys):
  """A copy of jaxcolor without its bundled model (e.g. a stripped install)."""
  monkeypatch.setattr(checkpoint, 'BUNDLED', tmp_path / 'no_model_here')
  monkeypatch.chdir(tmp_path)
  assert infer.main(['--image', str(photos / 'chelsea.png')]) == 2
  message = capsys.readouterr().err
  assert 'no trained model is available' in message and 'train.py' in message
  assert not (tmp_path / 'colorized').exists()


def test_output_folder_that_cannot_be_written(photos, tiny_checkpoint, tmp_path, capsys):
  blocker = tmp_path / 'a_file'
  blocker.write_text('not a folder')
  assert infer.main(['--image', str(photos / 'chelsea.png'), str(photos / 'astronaut.jpg'),
                     '--checkpoint', str(tiny_checkpoint), '--output', str(blocker / 'out')]) == 1
  errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith('error:')]
  assert len(errors) == 2 and all('cannot write' in e for e in errors), errors
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


def test_tiled_output_matches_untiled(tiny_checkpoint, tmp_path, capsys):
  source = tmp_path / 'big.png'
  Image.fromarray(photo('astronaut')[:203, :150]).save(source)
  outputs = {}
  for tile in (0, 64):
    out = tmp_path / f'tile{tile}.png'
    assert infer.main(['--image', str(source), '--checkpoint', str(tiny_checkpoint),
                       '--output', str(out), '--tile', str(tile)]) == 0
    outputs[tile] = np.asarray(Image.open(out), np.int16)
  assert np.abs(outputs[0] - outputs[64]).max() <= 1  # 8-bit rounding of equal floats
  with pytest.raises(SystemExit) as exit_:
    infer.parse_args(['--image', str(source), '--tile', '30'])
  assert exit_.value.code == 2
  assert '--tile must be 0 or a positive multiple of 8' in capsys.readouterr().err


def grey_photo(path, name, height, width):
  """A greyscale crop of one of the bundled photos, written to `path` (its folders made)."""
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(photo(name)[:height, :width]).convert('L').save(path)


def colorize(*args):
  return infer.main([str(arg) for arg in args])


def test_same_names_in_different_folders_keep_both_results(tiny_checkpoint, tmp_path):
  """Both used to go to out/x.png: the second replaced the first (or, without
  --overwrite, failed)."""
  grey_photo(tmp_path / 'a' / 'x.png', 'astronaut', 24, 40)
  grey_photo(tmp_path / 'b' / 'x.png', 'rocket', 40, 24)
  out = tmp_path / 'out'
  assert colorize('--image', tmp_path / 'a' / 'x.png', tmp_path / 'b' / 'x.png',
                  '--output', out, '--checkpoint', tiny_checkpoint, '--overwrite') == 0
  assert sorted(p.relative_to(out).as_posix() for p in out.rglob('*.*')) == ['a/x.png', 'b/x.png']
  assert Image.open(out / 'a' / 'x.png').size == (40, 24)
  assert Image.open(out / 'b' / 'x.png').size == (24, 40)


def test_folders_are_searched_recursively_into_the_same_structure(tiny_checkpoint, tmp_path,
                                                                  capsys):
  scans = tmp_path / 'scans'
  sizes = {'x.gif': (24, 40), 'x.png': (40, 24), '1920/x.png': (32, 32)}  # input: (H, W)
  out = scans / 'colorized'  # inside the input folder, with an earlier result: never searched
  for name, size in {**sizes, '.hidden.png': (8, 8), '.cache/z.png': (8, 8),
                     'colorized/earlier.png': (8, 8)}.items():
    grey_photo(scans / name, 'coffee', *size)
  assert colorize('--image', scans, '--output', out, '--checkpoint', tiny_checkpoint) == 0
  expected = {'x.png': 'x.gif', 'x-2.png': 'x.png', '1920/x.png': '1920/x.png'}  # output: input
  assert sorted(p.relative_to(out).as_posix() for p in out.rglob('*.*')) == sorted(
      [*expected, 'earlier.png'])
  for output, source in expected.items():
    assert Image.open(out / output).size == sizes[source][::-1]
  assert len(capsys.readouterr().out.splitlines()) == 3


def test_an_image_file_name_for_several_inputs_is_an_error(photos, tiny_checkpoint, tmp_path,
                                                           capsys):
  target = tmp_path / 'name.png'
  assert colorize('--image', photos / 'chelsea.png', photos / 'astronaut.jpg',
                  '--output', target, '--checkpoint', tiny_checkpoint) == 2
  message = capsys.readouterr().err
  assert f'{target} is an image file name' in message and '2 inputs' in message, message
  assert not target.exists()


def test_output_names_stay_inside_the_output_folder_and_never_collide(tmp_path, monkeypatch):
  (tmp_path / 'here').mkdir()
  monkeypatch.chdir(tmp_path / 'here')
  inputs = {pathlib.Path(p): pathlib.Path(b) for p, b in [
      ('../a/x.png', '../a'), ('X.png', '.'), ('x.png', '.'), ('x.gif', '.'), ('x.tif', '.')]}
  plan = batch.plan_outputs(inputs, 'out')
  assert {str(k): str(v) for k, v in plan.items()} == {
      '../a/x.png': 'out/a/x.png', 'X.png': 'out/here/X.png',
      'x.png': 'out/here/x-2.png',  # X.png and x.png are one file where case is ignored
      'x.gif': 'out/here/x-3.png', 'x.tif': 'out/here/x.tif'}
  # A name ending in '/' is a folder, whatever its extension; one input may get a file.
  assert batch.plan_outputs(inputs, 'out.png/')[pathlib.Path('x.tif')] == pathlib.Path(
      'out.png/here/x.tif')
  assert batch.plan_outputs({pathlib.Path('x.gif'): pathlib.Path('.')}, 'one.jpg') == {
      pathlib.Path('x.gif'): pathlib.Path('one.jpg')}
