"""A trained model as one portable file: StableHLO (jax.export) or ONNX.

  python export.py --format onnx --output colorizer.onnx
  python export.py --checkpoint runs/mine/checkpoints --format stablehlo \\
      --output colorizer.stablehlo

Both files compute what `inference.Predictor` computes (untiled), with
BatchNorm folded into the layers (`jaxcolor.apps.folding`):

  inputs   l         float32 [height, width]: the photo's CIE L* / 100, in [0, 1];
                     any size (edge-padded to a multiple of 8 inside)
           l_global  float32 [global_height, global_width]: what the global path
                     sees, any size (resized inside to G x G, antialiased
                     bilinear): `l` itself, or another photo's L to borrow its
                     scene and mood
  outputs  rgb            float32 [height, width, 3]: sRGB in [0, 1], the
                          input's L with the predicted a*b* (half resolution,
                          upsampled bilinearly)
           probabilities  float32 [num_classes]: scene classes (softmax)

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
from jaxcolor import checkpoint
from jaxcolor import files
from jaxcolor import inference

FORMATS = ('stablehlo', 'onnx')
# jax.export lowers for these platforms; the file runs on any of them.
PLATFORMS = ('cpu', 'cuda', 'rocm', 'tpu')
INSTALL = "pip install 'jaxcolor[export]' (in a clone: pip install -r requirements-export.txt)"


class ExportError(Exception):
  """An export that cannot be done; the message says why and what to do."""


def describe(model_config, class_names, file_format):
  """What the exported file computes (ONNX metadata_props, StableHLO's .json)."""
  size = model_config.global_size
  contract = {
      'format': file_format,
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
      'probabilities': f'output, float32 [{model_config.num_classes}]: scene-class '
                       'probabilities (softmax), in the order of class_names.',
      'global_size': size,
      'class_names': list(class_names or []),
      'model': dict(model_config),
  }
  if file_format == 'stablehlo':
    contract['platforms'] = list(PLATFORMS)
  return contract


def colorize_function(folded, global_size):
  """(l [H, W], l_global [h, w]) -> (rgb [H, W, 3], probabilities), as Predictor."""
  def colorize(l_HxW, l_global_hxw):
    l_global = inference.resize_to_square(l_global_hxw[..., None], global_size)
    rgb, logits = inference.colorize_l(folding.FoldedColorizer(), folded, l_HxW[..., None],
                                       l_global)
    return rgb, jax.nn.softmax(logits)
  return colorize


def to_stablehlo(folded, global_size):
  """The serialized jax.export artifact, symbolic in every input dimension."""
  dims = jax_export.symbolic_shape('height, width, global_height, global_width')
  args = (jax.ShapeDtypeStruct(dims[:2], jnp.float32),
          jax.ShapeDtypeStruct(dims[2:], jnp.float32))
  exported = jax_export.export(jax.jit(colorize_function(folded, global_size)),
                               platforms=PLATFORMS)(*args)
  return exported.serialize()


def to_onnx(folded, model_config, metadata):
  """The serialized ONNX model (see jaxcolor.apps.onnx_graph); `metadata` becomes its
  metadata_props, strings as they are and anything else as JSON."""
  _require('onnx')
  from jaxcolor.apps import onnx_graph
  props = {key: value if isinstance(value, str) else json.dumps(value)
           for key, value in metadata.items()}
  model = onnx_graph.build(folded, model_config.global_size, model_config.num_classes, props)
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
  if (model_config.get('head', 'regression') != 'regression' or model_config.get('encoder')
      or model_config.get('hints')):
    raise ExportError('only models with the paper\'s colour head, no pretrained encoder and '
                      'no hints can be exported so far')
  folded = folding.fold(variables)
  metadata = describe(model_config, class_names, file_format)
  if file_format == 'stablehlo':
    contents = [to_stablehlo(folded, model_config.global_size),
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


def load_stablehlo(path):
  """An exported StableHLO file as a function (l, l_global) -> (rgb, probabilities)."""
  exported = jax_export.deserialize(bytearray(pathlib.Path(path).read_bytes()))
  call = jax.jit(exported.call)
  return lambda l, l_global: tuple(np.asarray(a) for a in call(l, l_global))


def load_onnx(path, threads=None):
  """An exported ONNX file in onnxruntime on CPU, as (l, l_global) -> (rgb, probabilities)."""
  _require('onnxruntime')
  import onnxruntime
  options = onnxruntime.SessionOptions()
  if threads:
    options.intra_op_num_threads = threads
  session = onnxruntime.InferenceSession(str(path), options,
                                         providers=['CPUExecutionProvider'])
  return lambda l, l_global: tuple(session.run(None, {'l': l, 'l_global': l_global}))


def max_difference(run, predictor, l_HxW):
  """(max |rgb - Predictor's rgb|, the same for probabilities) on one photo's L."""
  rgb, probabilities = run(l_HxW, l_HxW)
  reference = predictor(l_HxW)
  return (float(np.abs(rgb - reference.rgb).max()),
          float(np.abs(probabilities - reference.probabilities).max()))


LOADERS = {'stablehlo': load_stablehlo, 'onnx': load_onnx}
