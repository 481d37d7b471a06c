"""label.py: teacher labels for a photo folder. The plumbing runs with a stand-in
classifier; the real teacher only where ../shared and ai-edge-litert are present."""
import importlib.util
import pathlib

import numpy as np
from PIL import Image
import pytest

from jaxcolor.commands import label
from jaxcolor import teacher

from conftest import photo

TEACHER_DIR = pathlib.Path(__file__).resolve().parents[2] / 'shared/models/mobilenet_v2_imagenet'
NAMES = ('red', 'green', 'blue', 'other')


def _by_colour(x_224x224x3):
  """A stand-in teacher: probabilities from the mean of each channel."""
  means = np.append(x_224x224x3.reshape(-1, 3).mean(axis=0), 1.0)
  return means / means.sum()


@pytest.fixture
def folder(tmp_path):
  (tmp_path / 'sub').mkdir()
  Image.fromarray(photo('coffee')).save(tmp_path / 'coffee.jpg')
  Image.fromarray(photo('chelsea')[:100]).save(tmp_path / 'sub' / 'chelsea.png')
  (tmp_path / 'sub' / 'broken.jpg').write_bytes(b'not a photo')
  return tmp_path


def test_labels_every_photo_and_resumes(folder):
  said = []
  path = teacher.label_folder(folder, _by_colour, NAMES, top_k=2, progress=said.append)
  labels, names = teacher.read_labels(path)
  assert names == NAMES and sorted(labels) == ['coffee.jpg', 'sub/chelsea.png']
  assert any('broken.jpg: cannot be read' in line for line in said)
  x = teacher.teacher_input(Image.open(folder / 'coffee.jpg'))
  assert x.shape == (224, 224, 3) and x.dtype == np.uint8
  expected = _by_colour(x)
  classes, probabilities = labels['coffee.jpg']
  np.testing.assert_array_equal(classes, np.argsort(-expected)[:2])
  np.testing.assert_allclose(probabilities, np.sort(expected)[::-1][:2], atol=1e-4)
  # A new photo: a second run labels it (and tries the broken file again), keeps the rest.
  Image.fromarray(photo('rocket')).save(folder / 'rocket.jpg')
  said.clear()
  teacher.label_folder(folder, _by_colour, NAMES, top_k=2, progress=said.append)
  assert said[0].endswith('2 photos already labelled, 2 to go')
  assert sorted(teacher.read_labels(path)[0]) == ['coffee.jpg', 'rocket.jpg', 'sub/chelsea.png']
  with pytest.raises(ValueError, match='other classes'):
    teacher.label_folder(folder, _by_colour, NAMES[:3], progress=said.append)


def test_missing_teacher_is_a_clear_error(folder, tmp_path, capsys):
  assert label.main(['--folder', str(folder), '--teacher', str(tmp_path / 'nothing')]) == 2
  assert 'expected one .tflite model, found 0' in capsys.readouterr().err


@pytest.mark.skipif(not TEACHER_DIR.is_dir() or not importlib.util.find_spec('ai_edge_litert'),
                    reason='the teacher model (../shared/models) and ai-edge-litert '
                           '(requirements-label.txt) are not on this machine')
def test_the_real_teacher_knows_a_cat_and_a_cup(folder):
  classify, names = teacher.litert_teacher(TEACHER_DIR)
  assert len(names) == 1000 and names[0] == 'tench, Tinca tinca'
  cat = classify(teacher.teacher_input(Image.fromarray(photo('chelsea'))))
  cup = classify(teacher.teacher_input(Image.fromarray(photo('coffee'))))
  assert abs(cat.sum() - 1) < 1e-3
  assert 'cat' in names[int(np.argmax(cat))]
  assert any(word in names[int(np.argmax(cup))] for word in ('cup', 'espresso', 'coffee'))
