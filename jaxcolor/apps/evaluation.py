"""Scoring colorizations against the colour originals (protocol: docs/EVALUATION.md).

Each colour photo is reduced to its L*, colorized, and compared with the
original in sRGB. Two baselines are scored on the same photos: greyscale
(a* = b* = 0) and one constant a*b* (the mean over all evaluated pixels).
"""
import dataclasses
import hashlib
import pathlib

import numpy as np
from PIL import Image

from jaxcolor import color
from jaxcolor import hints as hints_lib
from jaxcolor import images
from jaxcolor import teacher as teacher_lib

# Photos are scored at their own size, shrunk (Lanczos) to this longest side.
MAX_SIDE = 512
_SSIM_SIGMA, _SSIM_RADIUS = 1.5, 5  # Wang et al. 2004: 11x11 Gaussian, sigma 1.5


def psnr(a, b):
  """PSNR in dB of two sRGB images in [0, 1] (mean squared error over all values)."""
  mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
  return float('inf') if mse == 0 else float(10 * np.log10(1.0 / mse))


def _gaussian_blur(x_HxWxC):
  """Separable Gaussian filter, valid region only (as SSIM's reference code)."""
  t = np.arange(-_SSIM_RADIUS, _SSIM_RADIUS + 1)
  kernel = np.exp(-t ** 2 / (2 * _SSIM_SIGMA ** 2))
  kernel /= kernel.sum()
  size = len(kernel)
  h, w = x_HxWxC.shape[:2]
  rows = sum(k * x_HxWxC[i:h - size + 1 + i] for i, k in enumerate(kernel))
  return sum(k * rows[:, i:w - size + 1 + i] for i, k in enumerate(kernel))


def ssim(a, b):
  """Mean SSIM (11x11 Gaussian window, sigma 1.5, per channel) of two images in [0, 1]."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  c1, c2 = 0.01 ** 2, 0.03 ** 2
  mu_a, mu_b = _gaussian_blur(a), _gaussian_blur(b)
  var_a = _gaussian_blur(a * a) - mu_a ** 2
  var_b = _gaussian_blur(b * b) - mu_b ** 2
  cov = _gaussian_blur(a * b) - mu_a * mu_b
  ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2) /
              ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2)))
  return float(ssim_map.mean())


def colourfulness(rgb):
  """Hasler and Suesstrunk 2003 colourfulness of an sRGB image in [0, 1] (0-255 scale)."""
  r, g, b = np.moveaxis(np.asarray(rgb, np.float64) * 255.0, -1, 0)
  rg, yb = r - g, 0.5 * (r + g) - b
  return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def mean_ab(rgb):
  """The mean a*, b* of an sRGB image: a colour cast shows here (sepia is a*, b* > 0)."""
  return [float(x) for x in color.rgb_to_lab(np.asarray(rgb, np.float64))[..., 1:]
          .reshape(-1, 2).mean(axis=0)]


def scores(output, truth):
  return {'psnr': psnr(output, truth), 'ssim': ssim(output, truth),
          'colourfulness': colourfulness(output), 'mean_ab': mean_ab(output)}


@dataclasses.dataclass
class Photo:
  path: pathlib.Path
  rgb: np.ndarray  # H x W x 3 float64 sRGB in [0, 1], at most MAX_SIDE
  label: str | None  # the parent folder's name
  source: str = ''  # the top-level sub-folder of the evaluated folder ('' at its root)


def load_colour_photos(folder, max_side=MAX_SIDE, skip=None):
  """Colour photos under `folder`, searched as images.find_images does (leaving
  out the folder `skip`); returns (photos, skipped messages)."""
  photos, skipped = [], []
  for path in images.find_images(folder, skip=skip):
    try:
      with Image.open(path) as image:
        image = image.convert('RGB')
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        rgb = np.asarray(image, np.float64) / 255.0
    except (OSError, ValueError) as e:
      skipped.append(f'{path}: unreadable ({e})')
      continue
    if images.is_grey(rgb):
      skipped.append(f'{path}: greyscale, no colour to compare with')
      continue
    parts = path.relative_to(folder).parts
    photos.append(Photo(path, rgb, path.parent.name, parts[0] if len(parts) > 1 else ''))
  return photos, skipped


def simulated_hints(photo, lab, count):
  """`count` hints from the photo's true colours (hints.simulate): positions seeded
  by the photo's name, so every model gets the same ones, and the first n of them
  are the n-hint protocol's; patches of hints.default_size (6 px at a short side
  of 256), each the mean true a*b* of its patch."""
  name = f'{photo.source}/{photo.label}/{photo.path.name}'
  rng = np.random.default_rng(int.from_bytes(hashlib.sha1(name.encode()).digest()[:8], 'little'))
  return hints_lib.simulate(lab[..., 1:], rng, count=count,
                            size=hints_lib.default_size(*lab.shape[:2]))


def evaluate(predictor, photos, teacher=None, strength=1.0, hints=0, teacher_names=()):
  """Per-photo scores of the model and both baselines, and their means.

  `strength` scales the model's colours as `infer.py --strength` does
  (color.with_strength). `hints` > 0 steers a model that takes hints with that
  many simulated from each photo's truth (simulated_hints).

  With `teacher` (224x224 uint8 RGB -> class probabilities, see
  jaxcolor/teacher.py), also Zhang et al. 2016's test: does the teacher name
  the colorized photo (and the grey one) as it names the original? And when the
  model names scenes with the teacher's classes (`teacher_names`: a pretrained
  encoder, or training on the teacher's labels), is its own top-1 on the grey
  input the teacher's on the original (`label_agrees`; its probability
  `label_probability`), is that label confident enough to be shown
  (`label_shown`, Predictor.label_confidence), and how often
  is a shown label the teacher's (`shown_label_agrees`, in the summary)?
  """
  labs = [color.rgb_to_lab(p.rgb) for p in photos]
  mean_colour = np.concatenate([lab[..., 1:].reshape(-1, 2) for lab in labs]).mean(axis=0)
  per_photo, outputs = [], []
  same_classes = bool(teacher_names) and tuple(predictor.class_names) == tuple(teacher_names)
  for photo, lab in zip(photos, labs):
    l01 = color.normalize_l(lab[..., 0]).astype(np.float32)
    prediction = predictor(l01, hints=simulated_hints(photo, lab, hints) if hints else None)
    rgb = prediction.rgb_at(l01, strength)
    constant = np.concatenate([lab[..., :1], np.broadcast_to(mean_colour, lab.shape[:2] + (2,))],
                              -1)
    grey = color.grey_rgb(l01.astype(np.float64))
    row = {'file': str(photo.path), 'source': photo.source, 'size': list(photo.rgb.shape[:2]),
           'model': scores(rgb, photo.rgb),
           'greyscale': scores(grey, photo.rgb),
           'mean_ab': scores(color.lab_to_rgb(constant), photo.rgb),
           'ground_truth': {'colourfulness': colourfulness(photo.rgb),
                            'mean_ab': mean_ab(photo.rgb)}}
    top = predictor.top_k(prediction.probabilities, 1)
    if top and photo.label in predictor.class_names:
      row['label'], row['predicted'] = photo.label, top[0][0]
    if teacher is not None:
      truth_class = _teacher_class(teacher, photo.rgb)
      row['model']['teacher_agrees'] = _teacher_class(teacher, rgb) == truth_class
      row['greyscale']['teacher_agrees'] = _teacher_class(teacher, grey) == truth_class
      if same_classes:
        top = int(np.argmax(prediction.probabilities))
        row['model']['label_agrees'] = top == truth_class
        row['model']['label_probability'] = float(prediction.probabilities[top])
        row['model']['label_shown'] = bool(
            prediction.probabilities[top] >= predictor.label_confidence)
    per_photo.append(row)
    outputs.append(rgb)
  results = summarize(per_photo)
  results['summary']['mean_ab']['ab'] = [float(x) for x in mean_colour]  # the baseline's colour
  return results, outputs


def _teacher_class(teacher, rgb):
  x = teacher_lib.teacher_input(Image.fromarray(images.to_uint8(rgb)))
  return int(np.argmax(teacher(x)))


def _means(rows, method):
  """Mean over rows of every score of one method (per channel for mean_ab)."""
  keys = [k for k in rows[0][method] if k != 'mean_ab']
  means = {k: float(np.mean([row[method][k] for row in rows])) for k in keys}
  means['mean_ab'] = [float(x) for x in np.mean([row[method]['mean_ab'] for row in rows], 0)]
  return means


def _summary(rows):
  summary = {'photos': len(rows)}
  for method in ('model', 'greyscale', 'mean_ab', 'ground_truth'):
    summary[method] = _means(rows, method)
  shown = [row for row in rows if row['model'].get('label_shown')]
  if shown:
    summary['model']['shown_label_agrees'] = float(np.mean(
        [row['model']['label_agrees'] for row in shown]))
  labelled = [row for row in rows if 'label' in row]
  if labelled:
    summary['model']['scene_accuracy'] = float(np.mean(
        [row['label'] == row['predicted'] for row in labelled]))
  return summary


def summarize(per_photo):
  """Means over photos of every score (and per source, when the photos have sources)."""
  summary = _summary(per_photo)
  sources = sorted({row['source'] for row in per_photo} - {''})
  if sources:
    summary['by_source'] = {s: _summary([r for r in per_photo if r['source'] == s])
                            for s in sources}
  return {'summary': summary, 'per_photo': per_photo}


def contact_sheet(photos, outputs, path, rows=24, height=160):
  """A PNG grid, one photo per row: grey input | colorized | original."""
  tiles = []
  for photo, output in list(zip(photos, outputs))[:rows]:
    l01 = color.normalize_l(color.rgb_to_lab(photo.rgb)[..., 0])
    row = np.concatenate([color.grey_rgb(l01), output, photo.rgb], axis=1)
    image = Image.fromarray(images.to_uint8(row))
    width = round(image.width * height / image.height)
    tiles.append(image.resize((width, height), Image.Resampling.LANCZOS))
  sheet = Image.new('RGB', (max(t.width for t in tiles), sum(t.height for t in tiles)), 'white')
  top = 0
  for tile in tiles:
    sheet.paste(tile, (0, top))
    top += tile.height
  sheet.save(path)
