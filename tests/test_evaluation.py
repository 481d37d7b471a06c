"""Evaluation metrics against hand-computed values, and evaluate.py end to end."""
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from skimage.metrics import structural_similarity

from conftest import photo
from jaxcolor import evaluation

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_psnr_by_hand():
  a = np.zeros((2, 2, 3))
  assert evaluation.psnr(a, a + 0.1) == pytest.approx(20.0)  # mse 0.01
  b = a.copy()
  b[0, 0, 0] = 1.0  # mse 1/12
  assert evaluation.psnr(a, b) == pytest.approx(10 * np.log10(12))


def test_colourfulness_by_hand():
  red_blue = np.array([[[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]])
  # rg = (255, 0), yb = (127.5, -255): std 127.5 and 191.25, mean 127.5 and -63.75.
  expected = np.hypot(127.5, 191.25) + 0.3 * np.hypot(127.5, -63.75)
  assert evaluation.colourfulness(red_blue) == pytest.approx(expected)
  assert evaluation.colourfulness(np.full((3, 3, 3), 0.4)) == 0.0


def test_ssim_matches_scikit_image():
  truth = photo('coffee')[:64, :80] / 255.0
  noisy = np.clip(truth + np.random.default_rng(0).normal(0, 0.05, truth.shape), 0, 1)
  expected = structural_similarity(truth, noisy, gaussian_weights=True, sigma=1.5,
                                   use_sample_covariance=False, data_range=1.0,
                                   channel_axis=-1)
  assert evaluation.ssim(truth, noisy) == pytest.approx(expected, abs=1e-6)
  assert evaluation.ssim(truth, truth) == pytest.approx(1.0)


def test_evaluate_writes_scores_and_a_contact_sheet(tiny_checkpoint, tmp_path):
  photos = tmp_path / 'photos'
  (photos / 'beach').mkdir(parents=True)
  for name in ('astronaut', 'chelsea', 'rocket'):
    Image.fromarray(photo(name)[:90, :120]).save(photos / 'beach' / f'{name}.png')
  Image.fromarray(photo('coffee')).convert('L').save(photos / 'grey.png')
  out = tmp_path / 'eval'
  env = {**os.environ, 'PYTHONPATH': str(ROOT)}
  run = subprocess.run([sys.executable, str(ROOT / 'evaluate.py'), '--folder', str(photos),
                        '--checkpoint', str(tiny_checkpoint), '--output', str(out)],
                       capture_output=True, text=True, env=env, timeout=300)
  assert run.returncode == 0, run.stderr
  assert 'grey.png: greyscale' in run.stderr
  results = json.loads((out / 'results.json').read_text())
  summary = results['summary']
  assert summary['photos'] == 3 and len(results['per_photo']) == 3
  assert summary['greyscale']['colourfulness'] == 0.0
  assert summary['ground_truth']['colourfulness'] > 10
  for method in ('model', 'greyscale', 'mean_ab'):
    assert 5 < summary[method]['psnr'] < 60 and 0 < summary[method]['ssim'] <= 1
  assert 0.0 <= summary['model']['scene_accuracy'] <= 1.0  # 'beach' is a class of the model
  sheet = Image.open(out / 'contact_sheet.png')
  assert sheet.height == 3 * 160 and sheet.width == round(3 * 120 * 160 / 90)
  assert 'greyscale baseline' in run.stdout
