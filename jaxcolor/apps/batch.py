"""Colorize many files: find the inputs, name the outputs, go on past bad files."""
import glob
import os
import pathlib
import sys


from jaxcolor import hints as hints_lib
from jaxcolor import images

DEFAULT_OUTPUT = 'colorized'


def collect_inputs(patterns, skip=None):
  """Files, globs or folders -> ({image path: its base folder}, problems as messages).

  Folders are searched recursively (images.find_images); their files' base is
  the folder given, any other file's its own folder. Files inside `skip` (the
  output folder) are inputs only when named explicitly.
  """
  inputs, problems = {}, []
  for pattern in patterns:
    path = pathlib.Path(pattern)
    is_folder = path.is_dir()
    if is_folder:
      found = images.find_images(path, skip=skip)
      if not found:
        problems.append(f'{path}: folder holds no images')
    elif glob.has_magic(pattern):
      found = [pathlib.Path(p) for p in sorted(glob.glob(pattern))
               if pathlib.Path(p).is_file() and not _inside(p, skip)]
      if not found:
        problems.append(f'{pattern}: matches no files')
    else:
      found = [path]  # named explicitly: try it whatever its extension
    for file in found:
      inputs.setdefault(file, path if is_folder else file.parent)
  return inputs, problems


def _inside(path, folder):
  return folder is not None and (
      pathlib.Path(folder).resolve() in pathlib.Path(path).resolve().parents)


def plan_outputs(inputs, output=None):
  """Output path of every input of `inputs` ({path: base folder}, as collect_inputs).

  An image file name for one input is that file. Otherwise `output` is a folder
  in which every input keeps its path relative to the common folder of all
  bases, so inputs with the same name from different folders get different
  outputs; a name still taken (x.gif and x.png both become x.png: PNG where the
  input's format cannot be written) gets '-2', '-3', ... before its extension.
  Raises ValueError for an image file name and several inputs.
  """
  output = str(output or DEFAULT_OUTPUT)
  names_a_file = (images.output_format(output) and not os.path.isdir(output)
                  and not output.endswith(('/', os.sep)))
  if names_a_file:
    if len(inputs) > 1:
      raise ValueError(f'--output {output} is an image file name, which holds one result, but '
                       f'{len(inputs)} inputs were given: give a folder (a name ending in '
                       '"/" is one)')
    return {path: pathlib.Path(output) for path in inputs}
  plan, taken = {}, set()
  for path, relative in relative_paths(inputs).items():
    suffix = images.result_suffix(relative)
    target, copy = pathlib.Path(output, relative).with_suffix(suffix), 1
    while str(target).lower() in taken:  # lower(): file systems that ignore case
      copy += 1
      target = target.with_name(f'{relative.stem}-{copy}{suffix}')
    taken.add(str(target).lower())
    plan[path] = target
  return plan


def relative_paths(inputs):
  """{input: its path relative to the common folder of all bases} (`inputs` as
  collect_inputs gives them): where its result goes in an output folder."""
  if not inputs:
    return {}
  base = os.path.commonpath([os.path.abspath(b) for b in inputs.values()])
  return {path: pathlib.Path(os.path.relpath(os.path.abspath(path), base)) for path in inputs}


def plan_hints(inputs, hints_path):
  """({input: its hint file, or None}, warnings) for --hints PATH.

  PATH is one hint file (for one input), or a folder laid out like the output
  folder: the input whose relative path is 1920/a.jpg takes PATH/1920/a.jpg.json.
  An input without one gets no hints; a hint file that no input takes is warned
  about. Raises ValueError when PATH cannot be used.
  """
  path = pathlib.Path(hints_path)
  if path.is_file():
    if len(inputs) != 1:
      raise ValueError(f'--hints {path} is one hint file, but {len(inputs)} inputs were given: '
                       'give a folder of hint files named after their inputs (a.jpg.json)')
    return {source: path for source in inputs}, []
  if not path.is_dir():
    raise ValueError(f'--hints {path}: no such hint file or folder')
  plan = {}
  for source, relative in relative_paths(inputs).items():
    candidate = path / relative.with_name(relative.name + '.json')
    plan[source] = candidate if candidate.is_file() else None
  taken = {p.resolve() for p in plan.values() if p}
  warnings = [f'warning: {file}: a hint file that matches no input (the hints for 1920/a.jpg '
              f'are {path / "1920" / "a.jpg.json"})'
              for file in sorted(path.rglob('*.json')) if file.resolve() not in taken]
  return plan, warnings


class Reporter:
  """One line per problem, notes said once, and a progress line for many files."""

  def __init__(self, total, stream=None):
    self.total, self.done, self.stream = total, 0, stream or sys.stderr
    self.said = set()
    self.progress = total > 1 and self.stream.isatty()

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
                   overwrite=False, max_pixels=images.MAX_PIXELS, out=None, reporter=None,
                   strength=1.0, hint_files=None):
  """Colorizes every input of `plan` ({input: output}); returns the failure count.
  Results are listed on `out` (default: sys.stdout when called); `strength`
  scales their colours (color.with_strength); `hint_files` ({input: hint file or
  None}, plan_hints) steers a model that takes hints."""
  out = out or sys.stdout
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
      hint_file = (hint_files or {}).get(source)
      marks = hints_lib.load(hint_file, *loaded.l.shape) if hint_file else None
      prediction = predictor(loaded.l, style_l, hints=marks)
      target.parent.mkdir(parents=True, exist_ok=True)
      images.save_rgb(prediction.result_rgb(loaded.l, strength, side_by_side), target,
                      overwrite)
    except (images.ImageError, hints_lib.HintError) as e:
      failures += 1
      reporter.say(f'error: {e}')
      continue
    except OSError as e:
      failures += 1
      reporter.say(f'error: {target}: cannot write ({e.strerror or e})')
      continue
    labels = ', '.join(f'{name} {p:.0%}'
                       for name, p in predictor.top_k(prediction.probabilities, top_k))
    if top_k and predictor.class_names and not labels:
      labels = 'no confident scene'
    given = f'  ({len(marks)} hints from {hint_file})' if hint_file else ''
    print(f'{source} -> {target}{given}' + (f'  [{labels}]' if labels else ''), file=out)
  reporter.clear()
  return failures
