"""Evaluation metrics against hand-computed values, and evaluate.py end to end (in-process)."""
import json

import numpy as np
import pytest
from PIL import Image
from skimage.metrics import structural_similarity

from conftest import photo
from jaxcolor.apps import evaluation
from jaxcolor import color
from jaxcolor.commands import evaluate
from jaxcolor import inference


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


def test_evaluate_scores_each_photo_against_its_own_colours(tiny_checkpoint, tmp_path, capsys):
  photos = tmp_path / 'photos'
  names = ('astronaut', 'chelsea', 'rocket')
  (photos / 'beach').mkdir(parents=True)
  for name in names:
    Image.fromarray(photo(name)[:90, :120]).save(photos / 'beach' / f'{name}.png')
  Image.fromarray(photo('coffee')).convert('L').save(photos / 'grey.png')
  Image.fromarray(photo('coffee')[:90, :120]).save(photos / '.hidden.png')  # left out
  out = photos / 'eval'  # inside the folder: its contact sheet is never a photo
  for flags in ([], ['--overwrite']):
    assert evaluate.main(['--folder', str(photos), '--checkpoint', str(tiny_checkpoint),
                          '--output', str(out), *flags]) == 0
  run = capsys.readouterr()
  assert 'grey.png: greyscale' in run.err and 'greyscale baseline' in run.out
  results = json.loads((out / 'results.json').read_text())
  assert [row['file'] for row in results['per_photo']] == [
      str(photos / 'beach' / f'{name}.png') for name in names]

  # Every number again, from the photos, with the metrics tested above.
  predictor = inference.Predictor.from_checkpoint(tiny_checkpoint)
  truths = [photo(name)[:90, :120] / 255.0 for name in names]
  labs = [color.rgb_to_lab(truth) for truth in truths]
  mean_ab = np.mean([lab[..., 1:].reshape(-1, 2) for lab in labs], axis=(0, 1))
  predictions = [predictor(color.normalize_l(lab[..., 0]).astype(np.float32)) for lab in labs]
  outputs = {
      'model': [p.rgb for p in predictions],
      'greyscale': [color.grey_rgb(color.normalize_l(lab[..., 0])) for lab in labs],
      'mean_ab': [color.lab_to_rgb(np.concatenate(
          [lab[..., :1], np.broadcast_to(mean_ab, (90, 120, 2))], -1)) for lab in labs]}
  summary = results['summary']
  np.testing.assert_allclose(summary['mean_ab']['ab'], mean_ab, rtol=1e-6)
  for method, rgbs in outputs.items():
    for key, metric in [('psnr', evaluation.psnr), ('ssim', evaluation.ssim),
                        ('colourfulness', lambda rgb, _: evaluation.colourfulness(rgb))]:
      expected = [metric(rgb, truth) for rgb, truth in zip(rgbs, truths)]
      found = [row[method][key] for row in results['per_photo']]
      np.testing.assert_allclose(found, expected, rtol=1e-3, err_msg=f'{method} {key}')
      assert summary[method][key] == pytest.approx(np.mean(found))
  assert summary['greyscale']['colourfulness'] == 0.0
  assert summary['ground_truth']['colourfulness'] == pytest.approx(
      np.mean([evaluation.colourfulness(truth) for truth in truths]))
  correct = [predictor.top_k(p.probabilities, 1)[0][0] == 'beach' for p in predictions]
  assert summary['model']['scene_accuracy'] == pytest.approx(np.mean(correct))
  sheet = Image.open(out / 'contact_sheet.png')
  assert sheet.height == 3 * 160 and sheet.width == round(3 * 120 * 160 / 90)


def _dominant_channel(x_224x224x3):
  """A stand-in teacher: 'classes' are the dominant channel (red, green, blue)."""
  means = x_224x224x3.reshape(-1, 3).mean(axis=0)
  return np.exp(means) / np.exp(means).sum()


def test_colour_cast_sources_and_teacher_agreement(tiny_checkpoint, tmp_path):
  tints = {'reds': (1.0, 0.5, 0.5), 'blues': (0.5, 0.6, 1.0)}
  for source, tint in tints.items():
    (tmp_path / source).mkdir()
    for name in ('astronaut', 'chelsea'):
      x = (photo(name)[:64, :64] * np.array(tint)).astype(np.uint8)
      Image.fromarray(x).save(tmp_path / source / f'{name}.png')
  photos, _ = evaluation.load_colour_photos(tmp_path)
  predictor = inference.Predictor.from_checkpoint(tiny_checkpoint)
  results, outputs = evaluation.evaluate(predictor, photos, teacher=_dominant_channel)
  summary = results['summary']
  assert sorted(summary['by_source']) == ['blues', 'reds']
  assert summary['by_source']['reds']['photos'] == 2
  reds = summary['by_source']['reds']['ground_truth']['mean_ab']
  blues = summary['by_source']['blues']['ground_truth']['mean_ab']
  assert reds[0] > 10 and blues[1] < -10  # red: a* > 0; blue: b* < 0
  np.testing.assert_allclose(
      summary['model']['mean_ab'],
      np.mean([color.rgb_to_lab(o)[..., 1:].reshape(-1, 2).mean(0) for o in outputs], 0),
      rtol=1e-6)
  # Grey is always 'red' to this teacher (equal channels: the first wins).
  truth = [int(np.argmax(p.rgb.reshape(-1, 3).mean(0))) for p in photos]
  assert summary['greyscale']['teacher_agrees'] == pytest.approx(np.mean([t == 0 for t in truth]))
  model = [int(np.argmax(o.reshape(-1, 3).mean(0))) for o in outputs]
  assert summary['model']['teacher_agrees'] == pytest.approx(
      np.mean([m == t for m, t in zip(model, truth)]))


def test_the_model_s_own_label_against_the_teacher_s(tiny_checkpoint, tmp_path):
  for name in ('astronaut', 'chelsea', 'coffee'):
    Image.fromarray(photo(name)[:64, :64]).save(tmp_path / f'{name}.png')
  photos, _ = evaluation.load_colour_photos(tmp_path)
  predictor = inference.Predictor.from_checkpoint(tiny_checkpoint)
  names = predictor.class_names  # beach, forest, street, room: the teacher's classes too
  teacher = lambda x: np.append(_dominant_channel(x), 0.0)  # never 'room'
  truth = [int(np.argmax(p.rgb.reshape(-1, 3).mean(0))) for p in photos]
  own = [int(np.argmax(predictor(color.normalize_l(color.rgb_to_lab(p.rgb)[..., 0])
                                 .astype(np.float32)).probabilities)) for p in photos]
  agrees = np.mean([o == t for o, t in zip(own, truth)])
  predictor.label_confidence = 0.0  # every label shown
  model = evaluation.evaluate(predictor, photos, teacher, teacher_names=names)[0]['summary']['model']
  assert model['label_agrees'] == pytest.approx(agrees) and model['label_shown'] == 1.0
  assert model['shown_label_agrees'] == pytest.approx(agrees)
  predictor.label_confidence = 1.01  # none shown
  model = evaluation.evaluate(predictor, photos, teacher, teacher_names=names)[0]['summary']['model']
  assert model['label_shown'] == 0.0 and 'shown_label_agrees' not in model
  other = evaluation.evaluate(predictor, photos, teacher, teacher_names=('a', 'b', 'c', 'd'))
  assert 'label_agrees' not in other[0]['summary']['model']  # other classes: not comparable


def test_strength_scores_the_colours_infer_writes(tiny_checkpoint, tmp_path):
  Image.fromarray(photo('coffee')[:48, :64]).save(tmp_path / 'coffee.png')
  photos, _ = evaluation.load_colour_photos(tmp_path)
  predictor = inference.Predictor.from_checkpoint(tiny_checkpoint)
  summaries = {s: evaluation.evaluate(predictor, photos, strength=s)[0]['summary']
               for s in (0.0, 1.0, 2.0)}
  # Strength 0 is the grey baseline; more strength, more colour.
  assert summaries[0.0]['model']['psnr'] == pytest.approx(summaries[0.0]['greyscale']['psnr'],
                                                          abs=1e-3)
  colourful = [summaries[s]['model']['colourfulness'] for s in (0.0, 1.0, 2.0)]
  assert colourful[0] < 0.5 < colourful[1] < colourful[2]
