"""Colorize many files: find the inputs, name the outputs, go on past bad files."""
import glob
import pathlib
import sys

import numpy as np

from jaxcolor import color
from jaxcolor import images

DEFAULT_OUTPUT = 'colorized'


def collect_inputs(patterns):
  """Files, globs or folders -> (image paths in order, problems as messages)."""
  paths, problems = [], []
  for pattern in patterns:
    path = pathlib.Path(pattern)
    if path.is_dir():
      found = sorted(p for p in path.iterdir()
                     if p.is_file() and p.suffix.lower() in images.READABLE)
      if not found:
        problems.append(f'{path}: folder holds no images')
    elif glob.has_magic(pattern):
      found = [pathlib.Path(p) for p in sorted(glob.glob(pattern)) if pathlib.Path(p).is_file()]
      if not found:
        problems.append(f'{pattern}: matches no files')
    else:
      found = [path]  # named explicitly: try it whatever its extension
    paths.extend(p for p in found if p not in paths)
  return paths, problems


def plan_outputs(inputs, output=None):
  """Output path of every input: a file when one input is given an image file
  name, otherwise `<output folder>/<input name>` (PNG if the input's format
  cannot be written)."""
  output = pathlib.Path(output or DEFAULT_OUTPUT)
  if len(inputs) == 1 and images.output_format(output) and not output.is_dir():
    return {inputs[0]: output}
  plan = {}
  for path in inputs:
    suffix = path.suffix if images.output_format(path) else '.png'
    plan[path] = output / f'{path.stem}{suffix}'
  return plan


class Reporter:
  """One line per problem, notes said once, and a progress line for many files."""

  def __init__(self, total, stream=sys.stderr):
    self.total, self.done, self.stream = total, 0, stream
    self.said = set()
    self.progress = total > 1 and stream.isatty()

  def say(self, message, once_key=None):
    if once_key is not None:
      if once_key in self.said:
        return
      self.said.add(once_key)
    self.clear()
    print(message, file=self.stream)

  def step(self, path):
    self.done += 1
    if self.progress:
      print(f'\r[{self.done}/{self.total}] {path.name[:60]:60}', end='', file=self.stream,
            flush=True)

  def clear(self):
    if self.progress:
      print('\r' + ' ' * 72 + '\r', end='', file=self.stream)


def colorize_files(predictor, plan, style_l=None, top_k=0, side_by_side=False,
                   overwrite=False, max_pixels=images.MAX_PIXELS, out=sys.stdout,
                   reporter=None):
  """Colorizes every input of `plan` ({input: output}); returns the failure count."""
  reporter = reporter or Reporter(len(plan))
  if top_k and not predictor.class_names:
    reporter.say('note: this model was trained without scene labels; --topk has nothing to show')
  inputs = {p.resolve() for p in plan}
  failures = 0
  for source, target in plan.items():
    reporter.step(source)
    try:
      if target.resolve() in inputs:
        raise images.ImageError(f'{target}: is one of the inputs; not writing over it')
      loaded = images.load_luminance(source, max_pixels)
      for note in loaded.notes:
        reporter.say(note)
      if loaded.had_colour:
        reporter.say('note: colour inputs are colorized from their luminance only',
                     once_key='colour')
      prediction = predictor(loaded.l, style_l)
      rgb = prediction.rgb
      if side_by_side:
        rgb = np.concatenate([color.grey_rgb(loaded.l), rgb], axis=1)
      target.parent.mkdir(parents=True, exist_ok=True)
      images.save_rgb(rgb, target, overwrite)
    except images.ImageError as e:
      failures += 1
      reporter.say(f'error: {e}')
      continue
    except OSError as e:
      failures += 1
      reporter.say(f'error: {target}: cannot write ({e.strerror or e})')
      continue
    labels = ', '.join(f'{name} {p:.0%}'
                       for name, p in predictor.top_k(prediction.probabilities, top_k))
    print(f'{source} -> {target}' + (f'  [{labels}]' if labels else ''), file=out)
  reporter.clear()
  return failures
