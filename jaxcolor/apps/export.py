"""A trained model as one portable file: StableHLO (jax.export) or ONNX.

  python export.py --format onnx --output colorizer.onnx
  python export.py --checkpoint runs/mine/checkpoints --format stablehlo \\
      --output colorizer.stablehlo

Both files compute what `inference.Predictor` computes (untiled), with
BatchNorm folded into the layers (`jaxcolor.apps.folding`). Inputs, in this
order (the StableHLO function's arguments; ONNX names them):

  l            float32 [height, width]: the photo's CIE L* / 100, in [0, 1];
               any size (edge-padded to a multiple of 8 inside)
  l_global     float32 [global_height, global_width]: what the global path
               sees, any size (resized inside to G x G, antialiased
               bilinear): `l` itself, or another photo's L to borrow its
               scene and mood
  hints        only for a model with hints (model.hints): float32
               [height, width, 3], the planes hints.rasterize makes (a*/128,
               b*/128, mask 0 or 1); all zeros: no hints. The global path
               sees them resized to G x G beside l_global's; under a hint
               (mask 1) rgb has the hint's own a*b*
  temperature  only for a model with the bins head (model.head='bins'):
               float32 scalar, the annealed mean's temperature (bins.decode;
               jaxcolor's default 0.38, at most 1: lower is more vivid)

Outputs:

  rgb            float32 [height, width, 3]: sRGB in [0, 1], the input's L
                 with the predicted a*b* (half resolution, upsampled bilinearly;
                 a bins head's distribution decoded at half resolution first)
  probabilities  float32 [num_classes]: scene classes (softmax); with a
                 pretrained encoder (model.encoder), its 1,000 ImageNet classes,
                 a frozen one's from l_global resized to 224 x 224
                 (encoder.label_size), whatever G is

`onnx` and `onnxruntime` are needed only here (requirements-export.txt).
"""
import contextlib
import json
import pathlib

import jax
from jax import export as jax_export
import jax.numpy as jnp
import numpy as np

from jaxcolor.apps import folding
from jaxcolor import bins
from jaxcolor import checkpoint
from jaxcolor import encoder
from jaxcolor import files
from jaxcolor import hints as hints_lib
from jaxcolor import inference

FORMATS = ('stablehlo', 'onnx')
# jax.export lowers for these platforms; the file runs on any of them.
PLATFORMS = ('cpu', 'cuda', 'rocm', 'tpu')
INSTALL = "pip install 'jaxcolor[export]' (in a clone: pip install -r requirements-export.txt)"


class ExportError(Exception):
  """An export that cannot be done; the message says why and what to do."""


def inputs_of(model_config):
  """The exported file's inputs, in order: l, l_global, then hints for a model with
  hints, then temperature for a bins model."""
  return (['l', 'l_global'] + ['hints'] * bool(model_config.get('hints'))
          + ['temperature'] * (model_config.get('head', 'regression') == 'bins'))


def check_supported(model_config):
  """ExportError for a model the files cannot compute."""
  head, kind = model_config.get('head', 'regression'), model_config.get('encoder', '')
  if head not in ('regression', 'bins'):
    raise ExportError(f"model.head {head!r}: only 'regression' and 'bins' can be exported")
  if kind not in ('', *encoder.ENCODERS):
    raise ExportError(f'model.encoder {kind!r}: only {", ".join(encoder.ENCODERS)} can be '
                      'exported')


def describe(model_config, class_names, file_format, num_classes=None):
  """What the exported file computes (ONNX metadata_props, StableHLO's .json). `inputs`
  names the file's inputs in order; `hints` and `temperature` are described only for
  the models whose files take them (no input is ignored: a file without the bins head
  has no temperature, one without hints no hint planes)."""
  size = model_config.global_size
  num_classes = num_classes or model_config.num_classes
  inputs = inputs_of(model_config)
  contract = {
      'format': file_format,
      'inputs': inputs,
      'outputs': ['rgb', 'probabilities'],
      'l': 'input, float32 [height, width]: CIE L* / 100 of the photo, in [0, 1]. Any '
           'height, width >= 1: edge-padded to a multiple of 8 inside, outputs cropped back.',
      'l_global': 'input, float32 [global_height, global_width]: the lightness the global '
                  'path sees (scene, mood), any size >= 1: resized inside to '
                  f'{size}x{size} (bilinear, antialiased when shrinking, as '
                  "jax.image.resize 'linear' antialias=True). Pass l itself to colorize a "
                  "photo, or another photo's L to borrow its scene and mood.",
      'rgb': 'output, float32 [height, width, 3]: sRGB in [0, 1] at the input size: the '
             'input L* with the predicted a*b* (predicted at half resolution, upsampled '
             'bilinearly). 8-bit: floor(rgb * 255 + 0.5).',
      'probabilities': f'output, float32 [{num_classes}]: scene-class '
                       'probabilities (softmax), in the order of class_names.',
      'global_size': size,
      'class_names': list(class_names or []),
      'model': dict(model_config),
  }
  if 'hints' in inputs:
    contract['hints'] = (
        'input, float32 [height, width, 3]: colour hints as planes (jaxcolor.hints.rasterize): '
        f'a*/{hints_lib.AB_SCALE:g}, b*/{hints_lib.AB_SCALE:g} and a mask (1 where a hint is, '
        '0 elsewhere; a*, b* 0 there). All zeros: no hints. Zero-padded with l; the global '
        f'path sees them resized to {size}x{size} as l_global is (hints are meant for l '
        'itself as l_global: jaxcolor refuses hints with another photo\'s scene). Where the '
        'mask is 1, rgb takes the hint\'s own a*, b* exactly.')
  if 'temperature' in inputs:
    contract['temperature'] = (
        'input, float32 scalar: the annealed mean\'s temperature T (the colour of a pixel is '
        'sum_q softmax(logits / T)_q centre_q over the a*b* bins, at half resolution, then '
        f'upsampled); jaxcolor\'s default {bins.TEMPERATURE:g}, meaningful in (0, '
        f'{bins.MAX_TEMPERATURE:g}]: 1 is the distribution\'s mean (pale, safe), lower is more '
        'vivid; values below 0.001 decode as 0.001. Models without the bins head have no '
        'temperature input.')
    contract['temperature_default'] = bins.TEMPERATURE
    contract['max_temperature'] = bins.MAX_TEMPERATURE
  if model_config.get('encoder'):
    label_size = encoder.label_size(model_config)
    seen = (f' from l_global resized inside to {label_size}x{label_size} (as for the global '
            f'path; the colours come from the {size}x{size} view alone)' if label_size else '')
    contract['probabilities'] = (
        f'output, float32 [{num_classes}]: the pretrained encoder\'s ImageNet class '
        f'probabilities (softmax){seen}, in the order of class_names; jaxcolor names a scene '
        f'only at probability {encoder.LABEL_CONFIDENCE:g} or more.')
    contract['label_confidence'] = encoder.LABEL_CONFIDENCE
    if label_size:
      contract['label_size'] = label_size
  if file_format == 'stablehlo':
    contract['platforms'] = list(PLATFORMS)
  return contract


def colorize_function(folded, global_size, label_size=None):
  """(l [H, W], l_global [h, w], hints [H, W, 3] for a model with hints, temperature []
  for a bins model) -> (rgb [H, W, 3], probabilities), as Predictor; `label_size`
  (encoder.label_size): the probabilities are the encoder's on l_global resized to
  that size instead."""
  with_hints, with_bins = folding.has_hints(folded), folding.has_bins(folded)

  def colorize(l_HxW, l_global_hxw, *extra):
    x, l_global = l_HxW[..., None], inference.resize_to_square(l_global_hxw[..., None],
                                                               global_size)
    if with_hints:
      x = jnp.concatenate([x, extra[0]], axis=-1)
      l_global = jnp.concatenate(
          [l_global, inference.resize_to_square(extra[0], global_size)], axis=-1)
    temperature = extra[-1] if with_bins else bins.TEMPERATURE
    rgb, logits = inference.colorize_l(folding.FoldedColorizer(), folded, x, l_global,
                                       temperature=temperature)
    if label_size:
      l_label = inference.resize_to_square(l_global_hxw[..., None], label_size)
      logits = folding.FoldedColorizer().apply(folded, l_label[None], method='scene_logits')[0]
    return rgb, jax.nn.softmax(logits)
  return colorize


def to_stablehlo(folded, global_size, label_size=None):
  """The serialized jax.export artifact, symbolic in every input dimension."""
  dims = jax_export.symbolic_shape('height, width, global_height, global_width')
  args = [jax.ShapeDtypeStruct(dims[:2], jnp.float32),
          jax.ShapeDtypeStruct(dims[2:], jnp.float32)]
  if folding.has_hints(folded):
    args.append(jax.ShapeDtypeStruct((*dims[:2], hints_lib.NUM_PLANES), jnp.float32))
  if folding.has_bins(folded):
    args.append(jax.ShapeDtypeStruct((), jnp.float32))
  exported = jax_export.export(jax.jit(colorize_function(folded, global_size, label_size)),
                               platforms=PLATFORMS)(*args)
  return exported.serialize()


def to_onnx(folded, model_config, metadata):
  """The serialized ONNX model (see jaxcolor.apps.onnx_graph); `metadata` becomes its
  metadata_props, strings as they are and anything else as JSON."""
  _require('onnx')
  from jaxcolor.apps import onnx_graph
  props = {key: value if isinstance(value, str) else json.dumps(value)
           for key, value in metadata.items()}
  model = onnx_graph.build(folded, model_config.global_size, folding.num_classes(folded), props,
                           encoder.label_size(model_config))
  return model.SerializeToString()


def _require(package):
  try:
    __import__(package)
  except ImportError:
    raise ExportError(f'{package} is not installed: {INSTALL}') from None


def outputs_for(output, file_format):
  """The files an export writes: the artifact, and for StableHLO its .json description
  (jax.export's format has no field for one; ONNX keeps it in metadata_props)."""
  output = pathlib.Path(output)
  if file_format == 'stablehlo':
    return [output, output.with_name(output.name + '.json')]
  return [output]


def check_outputs(file_format, output, overwrite=False):
  """The files an export of `file_format` to `output` writes, or ExportError saying
  why it cannot (run before loading a checkpoint: a quick refusal)."""
  if file_format not in FORMATS:
    raise ExportError(f'format {file_format!r}: expected one of {", ".join(FORMATS)}')
  paths = outputs_for(output, file_format)
  if not paths[0].parent.is_dir():
    raise ExportError(f'{paths[0]}: cannot write (no folder {paths[0].parent})')
  for path in paths if not overwrite else []:
    if path.exists():
      raise ExportError(files.already_exists(path))
  if file_format == 'onnx':
    _require('onnx')
  return paths


def export(source, file_format, output, overwrite=False):
  """Writes a model as `file_format`; returns the files written. `source` is a
  checkpoint's path, or what checkpoint.load returned for one."""
  paths = check_outputs(file_format, output, overwrite)
  variables, model_config, class_names = (
      source if isinstance(source, tuple) else checkpoint.load(source))
  check_supported(model_config)
  folded = folding.fold(variables)
  metadata = describe(model_config, class_names, file_format, folding.num_classes(folded))
  if file_format == 'stablehlo':
    contents = [to_stablehlo(folded, model_config.global_size, encoder.label_size(model_config)),
                json.dumps(metadata, indent=2).encode() + b'\n']
  else:
    contents = [to_onnx(folded, model_config, metadata)]
  _write_all(paths, contents, overwrite)
  return paths


def _write_all(paths, contents, overwrite):
  """Writes every file before placing any (files.writing), so a failure (a full
  disk) leaves none of them; replaces files only with `overwrite`."""
  with contextlib.ExitStack() as stack:
    for path, data in zip(paths, contents):
      stack.enter_context(files.writing(path, overwrite, ExportError)).write_bytes(data)


def _arguments(names, l, l_global, hints, temperature):
  """The inputs `names` (a file's, in order) given the photo's arrays; hints default
  to none (zero planes) and the temperature to jaxcolor's default."""
  missing = [name for name, value in (('hints', hints), ('temperature', temperature))
             if value is not None and name not in names]
  if missing:
    raise ExportError(f'this file has no {missing[0]} input (its inputs: {", ".join(names)})')
  values = {
      'l': np.asarray(l, np.float32), 'l_global': np.asarray(l_global, np.float32),
      'hints': (np.zeros(np.shape(l) + (hints_lib.NUM_PLANES,), np.float32) if hints is None
                else np.asarray(hints, np.float32)),
      'temperature': np.asarray(bins.TEMPERATURE if temperature is None else temperature,
                                np.float32)}
  return [values[name] for name in names]


def _stablehlo_names(in_avals):
  """A StableHLO file's input names, from their ranks (see inputs_of)."""
  return ['l', 'l_global'] + [{3: 'hints', 0: 'temperature'}[len(a.shape)]
                              for a in in_avals[2:]]


def load_stablehlo(path):
  """An exported StableHLO file as a function (l, l_global, hints=None, temperature=None)
  -> (rgb, probabilities); `names`: its inputs."""
  exported = jax_export.deserialize(bytearray(pathlib.Path(path).read_bytes()))
  call = jax.jit(exported.call)
  names = _stablehlo_names(exported.in_avals)

  def run(l, l_global, hints=None, temperature=None):
    return tuple(np.asarray(a) for a in call(*_arguments(names, l, l_global, hints,
                                                         temperature)))
  run.names = names
  return run


def load_onnx(path, threads=None):
  """An exported ONNX file in onnxruntime on CPU, as (l, l_global, hints=None,
  temperature=None) -> (rgb, probabilities); `names`: its inputs."""
  _require('onnxruntime')
  import onnxruntime
  options = onnxruntime.SessionOptions()
  if threads:
    options.intra_op_num_threads = threads
  session = onnxruntime.InferenceSession(str(path), options,
                                         providers=['CPUExecutionProvider'])
  names = [value.name for value in session.get_inputs()]

  def run(l, l_global, hints=None, temperature=None):
    feed = dict(zip(names, _arguments(names, l, l_global, hints, temperature)))
    return tuple(session.run(None, feed))
  run.names = names
  return run


def max_difference(run, predictor, l_HxW, temperature=None, hints=None):
  """(max |rgb - Predictor's rgb|, the same for probabilities) on one photo's L, at
  `temperature` (None: the default) with `hints` ([hints.Hint]; None: none)."""
  planes = None if hints is None else hints_lib.rasterize(hints, *np.shape(l_HxW))
  rgb, probabilities = run(l_HxW, l_HxW, hints=planes, temperature=temperature)
  reference = predictor(l_HxW, temperature=temperature, hints=hints)
  return (float(np.abs(rgb - reference.rgb).max()),
          float(np.abs(probabilities - reference.probabilities).max()))


def sample_hints(height, width):
  """Two fixed colour hints (an orange and a blue patch) that `export --verify` and
  the tests colorize with."""
  size = hints_lib.default_size(height, width)
  return [hints_lib.Hint(width // 3, height // 3, size, (40.0, 50.0)),
          hints_lib.Hint(2 * width // 3, 2 * height // 3, size, (-10.0, -45.0))]


def checks(predictor, height, width):
  """The (temperature, hints) `export --verify` compares at for a photo of height x
  width: a bins model at jaxcolor's default and at 1, a model with hints without them
  and with sample_hints (None: the default, no hints)."""
  temperatures = [bins.TEMPERATURE, 1.0] if predictor.has_bins else [None]
  with_hints = [None, sample_hints(height, width)] if predictor.has_hints else [None]
  return [(t, h) for t in temperatures for h in with_hints]


LOADERS = {'stablehlo': load_stablehlo, 'onnx': load_onnx}
