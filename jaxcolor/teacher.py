"""Class labels for training photos from an ImageNet classifier (the "teacher").

Data preparation only: the classification branch learns from these labels, and
nothing at colorization time reads them. The teacher is any function from a
224x224 uint8 RGB image to class probabilities; `litert_teacher` loads a
TensorFlow Lite model with `ai-edge-litert` (requirements-label.txt).

The labels file is a TSV with one row per photo (paths relative to the folder):

  path  classes  probabilities
  cats_dogs/cat/0a1b_1.jpg  281,282,285  0.612,0.201,0.050

the teacher's top-k classes, most likely first, and their probabilities. Its
first line is `# classes: NAMES_FILE`, naming the file of class names (one per
line, in index order) written next to it.
"""
import os
import pathlib

import numpy as np
from PIL import Image, ImageOps

from jaxcolor import images

INPUT_SIZE = 224
LABELS_FILE = 'teacher_labels.tsv'
_HEADER = ('path', 'classes', 'probabilities')


def teacher_input(image):
  """PIL image -> 224x224x3 uint8: upright RGB, short side resized, centre crop."""
  image = ImageOps.exif_transpose(image).convert('RGB')
  scale = INPUT_SIZE / min(image.size)
  size = tuple(max(INPUT_SIZE, round(s * scale)) for s in image.size)
  image = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=3.0)
  left, top = (size[0] - INPUT_SIZE) // 2, (size[1] - INPUT_SIZE) // 2
  return np.asarray(image.crop((left, top, left + INPUT_SIZE, top + INPUT_SIZE)))


def litert_teacher(model_dir, num_threads=None):
  """(classify, class names) for the MobileNetV2 ImageNet model in model_dir.

  classify(uint8 224x224x3) -> 1000 float probabilities. The model's extra
  'background' output (index 0) is dropped and the rest renormalised.
  """
  from ai_edge_litert.interpreter import Interpreter  # pylint: disable=g-import-not-at-top
  model_dir = pathlib.Path(model_dir)
  models = sorted(model_dir.glob('*.tflite'))
  if len(models) != 1:
    raise FileNotFoundError(f'{model_dir}: expected one .tflite model, found {len(models)}')
  names = (model_dir / 'imagenet_labels.txt').read_text().splitlines()
  interpreter = Interpreter(model_path=str(models[0]), num_threads=num_threads or os.cpu_count())
  interpreter.allocate_tensors()
  input_index = interpreter.get_input_details()[0]['index']
  output = interpreter.get_output_details()[0]
  scale, zero = output['quantization']

  def classify(x_224x224x3):
    interpreter.set_tensor(input_index, x_224x224x3[None])
    interpreter.invoke()
    raw = interpreter.get_tensor(output['index'])[0].astype(np.float32)
    probabilities = (raw - zero) * scale if scale else raw
    probabilities = np.maximum(probabilities[1:], 0)
    return probabilities / max(probabilities.sum(), 1e-8)

  return classify, tuple(names[1:])


def read_labels(path):
  """{relative path: (classes int32[k], probabilities float32[k])} and the class names."""
  path = pathlib.Path(path)
  labels = {}
  with path.open() as f:
    names_file = f.readline().removeprefix('# classes:').strip()
    if f.readline().rstrip('\n').split('\t') != list(_HEADER):
      raise ValueError(f'{path}: not a teacher labels file (bad header)')
    for line in f:
      rel, classes, probabilities = line.rstrip('\n').split('\t')
      labels[rel] = (np.array(classes.split(','), np.int32),
                     np.array(probabilities.split(','), np.float32))
  names = tuple((path.parent / names_file).read_text().splitlines())
  return labels, names


def label_folder(folder, classify, class_names, *, output=None, top_k=5, num_threads=4,
                 progress=print):
  """Labels every photo under folder that the labels file lacks; returns its path.

  Rerunning after a stop labels only what is missing. Files that do not decode
  are reported through `progress` and left out.
  """
  folder = pathlib.Path(folder)
  output = pathlib.Path(output) if output else folder / LABELS_FILE
  names_path = output.with_name(output.stem + '.classes.txt')
  if output.exists():
    done, old_names = read_labels(output)
    if old_names != tuple(class_names):
      raise ValueError(f'{output} was written by a teacher with other classes; '
                       'choose another --output')
  else:
    done = {}
    names_path.write_text('\n'.join(class_names) + '\n')
    output.write_text(f'# classes: {names_path.name}\n' + '\t'.join(_HEADER) + '\n')
  found = images.find_images(folder)  # as the training data lists them
  todo = [rel for rel in (p.relative_to(folder).as_posix() for p in found) if rel not in done]
  progress(f'{folder}: {len(done)} photos already labelled, {len(todo)} to go')

  def load(rel):
    try:
      with Image.open(folder / rel) as image:
        return teacher_input(image)
    except Exception as e:  # pylint: disable=broad-except  # PIL raises many types
      return e

  with output.open('a') as out:
    loaded = images.ordered_parallel_map(load, todo, num_threads=num_threads)
    for i, (rel, x) in enumerate(zip(todo, loaded), 1):
      if isinstance(x, Exception):
        progress(f'error: {folder / rel}: cannot be read ({x}); not labelled')
        continue
      probabilities = classify(x)
      top = np.argsort(-probabilities)[:top_k]
      out.write(f'{rel}\t{",".join(map(str, top))}\t'
                f'{",".join(f"{p:.4f}" for p in probabilities[top])}\n')
      if i % 2000 == 0:
        out.flush()
        progress(f'{i}/{len(todo)} labelled')
  return output
