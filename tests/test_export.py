"""Exported StableHLO and ONNX files compute what Predictor computes, without jaxcolor."""
import errno
import importlib.util
import json
import os
import pathlib
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest

from jaxcolor.apps import export
from jaxcolor.apps import folding
from jaxcolor import bins
from jaxcolor import checkpoint
from jaxcolor import color
from jaxcolor.commands import export as export_command
from jaxcolor import encoder
from jaxcolor import hints as hints_lib
from jaxcolor import images
from jaxcolor import inference
from jaxcolor import model as model_lib
from conftest import photo
from conftest import random_variables
from conftest import tiny_model_config

ROOT = pathlib.Path(__file__).resolve().parent.parent
HAS_ONNX = all(importlib.util.find_spec(p) for p in ('onnx', 'onnxruntime'))
needs_onnx = pytest.mark.skipif(
    not HAS_ONNX, reason=f'onnx and onnxruntime are not installed: {export.INSTALL}')
FORMATS = ['stablehlo', pytest.param('onnx', marks=needs_onnx)]
ONE_LEVEL = 1 / 255  # one 8-bit sRGB level
# The files and Predictor differ by float32 rounding (folded BatchNorm, another
# summation order), up to ~1e-4 where the sRGB curve is steepest (measured on
# the tiny network's saturated colours; ~1e-6 with the bundled model).
TOLERANCE = ONE_LEVEL / 4
# (height, width) of the photos each model is checked on: one odd, and one the
# global size (Predictor then shares the trunk run between both paths).
SIZES = {'tiny': [(45, 61), (32, 32)], 'bundled': [(77, 129), (128, 128)]}


def lightness(name, height, width):
  rgb = photo(name)[40:40 + height, 60:60 + width] / 255.0
  return color.rgb_to_network(rgb)[0][..., 0].astype(np.float32)


# Tiny models with the options that are not the paper's, random weights: the bins
# head (a temperature input), the pretrained encoder (EfficientNet-Lite0 at the tiny
# global size), both, hints with bins, and all three.
ENCODER = 'efficientnet_lite0'
OPTIONS = {'bins': {'head': 'bins'},
           'encoder': {'encoder': ENCODER},
           'bins_encoder': {'head': 'bins', 'encoder': ENCODER},
           'hints_bins': {'hints': True, 'head': 'bins'},
           'hints_bins_encoder': {'hints': True, 'head': 'bins', 'encoder': ENCODER}}
INPUTS = {'bins': ['l', 'l_global', 'temperature'], 'encoder': ['l', 'l_global'],
          'bins_encoder': ['l', 'l_global', 'temperature'],
          'hints_bins': ['l', 'l_global', 'hints', 'temperature'],
          'hints_bins_encoder': ['l', 'l_global', 'hints', 'temperature']}


@pytest.fixture(scope='module')
def checkpoints(tiny_checkpoint, tiny_config):
  """{name: what export.export takes: a checkpoint, or checkpoint.load's result for
  one}, made on first use."""
  made = {'tiny': tiny_checkpoint, 'bundled': checkpoint.BUNDLED}

  def get(name):
    if name not in made:
      config = tiny_model_config(tiny_config, **OPTIONS[name])
      class_names = None
      if config.encoder:  # as training sets them
        class_names = encoder.class_names()
        config.num_classes = len(class_names)
      made[name] = random_variables(config, seed=len(made)), config, class_names
    return made[name]
  return get


@pytest.fixture(scope='module')
def predictors(checkpoints):
  """{name: Predictor}, made on first use."""
  class Predictors(dict):
    def __missing__(self, name):
      source = checkpoints(name)
      self[name] = (inference.Predictor(*source) if isinstance(source, tuple)
                    else inference.Predictor.from_checkpoint(source))
      return self[name]
  return Predictors()


@pytest.fixture(scope='module')
def exported(checkpoints, tmp_path_factory):
  """{(model, format): path}, written on first use."""
  folder = tmp_path_factory.mktemp('exported')
  cache = {}

  def get(name, file_format):
    if (name, file_format) not in cache:
      path = folder / f'{name}.{file_format}'
      export.export(checkpoints(name), file_format, path)
      cache[name, file_format] = path
    return cache[name, file_format]
  return get


def test_folded_network_is_the_flax_model_at_inference(tiny_config, tiny_variables):
  model = model_lib.from_config(tiny_config.model)
  folded = folding.fold(tiny_variables)
  assert not any('bn' in name for name in folded)
  size = tiny_config.model.global_size
  l = jnp.asarray(lightness('coffee', 40, 48))[None, ..., None]
  l_global = jnp.asarray(lightness('rocket', size, size))[None, ..., None]
  # Its own global input, and a G x G image that is its own (one trunk run).
  flax_apply = jax.jit(lambda *args: model.apply(tiny_variables, *args, train=False))
  folded_apply = jax.jit(lambda *args: folding.FoldedColorizer().apply(folded, *args))
  for args in ((l, l_global), (l_global, None)):
    want, got = flax_apply(*args), folded_apply(*args)
    for a, b in zip(want, got):
      np.testing.assert_allclose(b, a, atol=1e-5)
    assert float(jnp.std(got[0])) > 1e-3  # real BatchNorm statistics: not all grey


@pytest.mark.parametrize('file_format', FORMATS)
@pytest.mark.parametrize('name', ['tiny', 'bundled'])
def test_exported_file_matches_predictor(name, file_format, predictors, exported):
  run = export.LOADERS[file_format](exported(name, file_format))
  for (height, width), photo_name in zip(SIZES[name], ('astronaut', 'chelsea')):
    l = lightness(photo_name, height, width)
    rgb, probabilities = run(l, l)
    assert rgb.shape == (height, width, 3) and rgb.dtype == np.float32
    rgb_difference, probability_difference = export.max_difference(run, predictors[name], l)
    assert rgb_difference < TOLERANCE, (height, width, rgb_difference * 255)
    assert probability_difference < 1e-5
    assert np.ptp(rgb[..., 0] - rgb[..., 2]) > 0.01  # coloured, not grey


@pytest.mark.parametrize('file_format', FORMATS)
def test_another_photo_lends_its_global_features(file_format, predictors, exported):
  run = export.LOADERS[file_format](exported('tiny', file_format))
  l, style = lightness('astronaut', *SIZES['tiny'][0]), lightness('coffee', 50, 70)
  reference = predictors['tiny'](l, style_l=style)
  rgb, probabilities = run(l, style)
  np.testing.assert_allclose(rgb, reference.rgb, atol=TOLERANCE)
  np.testing.assert_allclose(probabilities, reference.probabilities, atol=1e-5)
  assert np.abs(rgb - run(l, l)[0]).max() > 1e-3  # the style changed the result


@pytest.mark.parametrize('file_format', FORMATS)
@pytest.mark.parametrize('name', OPTIONS)
def test_models_with_options_export_and_match_predictor(name, file_format, predictors, exported):
  """Bins head, encoder, both, hints: the file takes what the model needs and matches
  Predictor at the default temperature and at 1, without hints and with two."""
  run = export.LOADERS[file_format](exported(name, file_format))
  assert run.names == INPUTS[name]
  predictor, (height, width) = predictors[name], SIZES['tiny'][0]
  l = lightness('astronaut', height, width)
  checks = export.checks(predictor, height, width)
  assert len(checks) == (2 if predictor.has_bins else 1) * (2 if predictor.has_hints else 1)
  results = {}
  for temperature, hints in checks:
    rgb_difference, probability_difference = export.max_difference(
        run, predictor, l, temperature, hints)
    assert rgb_difference < TOLERANCE, (temperature, hints, rgb_difference * 255)
    assert probability_difference < 1e-5
    planes = None if hints is None else hints_lib.rasterize(hints, height, width)
    results[temperature, hints is None] = rgb = run(l, l, planes, temperature)[0]
    assert rgb.shape == (height, width, 3) and np.ptp(rgb[..., 0] - rgb[..., 2]) > 0.01
  # The dial and the hints change the colours, by more than one 8-bit level.
  if predictor.has_bins:
    assert np.abs(results[bins.TEMPERATURE, True] - results[1.0, True]).max() > ONE_LEVEL
  if predictor.has_hints:
    assert np.abs(results[bins.TEMPERATURE, True]
                  - results[bins.TEMPERATURE, False]).max() > ONE_LEVEL
  probabilities = run(l, l)[1]
  assert probabilities.shape == (len(encoder.class_names()) if 'encoder' in name else 4,)


def test_stablehlo_file_is_symbolic_and_described(exported, tiny_config):
  path = exported('tiny', 'stablehlo')
  loaded = jax.export.deserialize(bytearray(path.read_bytes()))
  assert [str(a.shape) for a in loaded.in_avals] == ['(height, width)',
                                                     '(global_height, global_width)']
  assert [str(a.shape) for a in loaded.out_avals] == ['(height, width, 3)', '(4,)']
  assert set(loaded.platforms) == {'cpu', 'cuda', 'rocm', 'tpu'}
  described = json.loads(path.with_name(path.name + '.json').read_text())
  assert described['class_names'] == ['beach', 'forest', 'street', 'room']
  assert described['global_size'] == tiny_config.model.global_size
  assert 'multiple of 8' in described['l'] and 'sRGB' in described['rgb']
  assert 'label_size' not in described  # the paper's classifier reads the global input


def test_stablehlo_program_has_plain_convolutions_and_no_batch_norm(exported):
  loaded = jax.export.deserialize(bytearray(exported('bundled', 'stablehlo').read_bytes()))
  program = loaded.mlir_module()
  convolutions = program.count('stablehlo.convolution')
  # 6 + 6 low-level (both paths), 2 mid, 4 global, fusion, 4 + 1 colorization (the last
  # one the bins head's), none replaced by Winograd's matrix products; and the frozen
  # encoder, run on the global view and on the 224 label view: its stem and 16 depthwise
  # convolutions each time (its 1x1 convolutions are matrix products). In each
  # platform's branch.
  assert convolutions == (24 + 2 * (1 + 16)) * len(loaded.platforms), convolutions
  assert 'rsqrt' not in program  # no BatchNorm normalisation left


def test_bins_and_encoder_file_takes_a_temperature_and_describes_it(exported):
  path = exported('bins_encoder', 'stablehlo')
  loaded = jax.export.deserialize(bytearray(path.read_bytes()))
  assert [str(a.shape) for a in loaded.in_avals] == ['(height, width)',
                                                     '(global_height, global_width)', '()']
  assert [str(a.shape) for a in loaded.out_avals] == ['(height, width, 3)', '(1000,)']
  described = json.loads(path.with_name(path.name + '.json').read_text())
  assert described['inputs'] == ['l', 'l_global', 'temperature']
  assert described['temperature_default'] == bins.TEMPERATURE == 0.38
  assert 'softmax(logits / T)' in described['temperature'] and 'hints' not in described
  assert described['class_names'] == list(encoder.class_names())
  assert 'ImageNet' in described['probabilities'] and described['label_confidence'] == 0.4
  # A frozen encoder at the tiny global size names the scene from its own 224 x 224 view.
  assert described['label_size'] == 224 and '224x224' in described['probabilities']
  # A file without the input refuses the argument, as Predictor does.
  with pytest.raises(export.ExportError, match='this file has no hints input'):
    export.load_stablehlo(path)(np.zeros((8, 8), np.float32), np.zeros((8, 8), np.float32),
                                hints=np.zeros((8, 8, 3), np.float32))


@needs_onnx
def test_onnx_file_with_hints_and_bins_names_its_inputs(exported):
  import onnx
  model = onnx.load(str(exported('hints_bins', 'onnx')))
  dims = lambda value: [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
  assert [(v.name, dims(v)) for v in model.graph.input] == [
      ('l', ['height', 'width']), ('l_global', ['global_height', 'global_width']),
      ('hints', ['height', 'width', 3]), ('temperature', [])]
  props = {p.key: p.value for p in model.metadata_props}
  assert json.loads(props['inputs']) == ['l', 'l_global', 'hints', 'temperature']
  assert 'rasterize' in props['hints'] and json.loads(props['temperature_default']) == 0.38


def test_verify_checks_both_temperatures_and_hints(checkpoints, exported, capsys, tmp_path):
  height, width = SIZES['tiny'][0]
  Image.fromarray(photo('rocket')[:height, :width]).save(tmp_path / 'photo.png')
  assert export_command.verify('stablehlo', exported('hints_bins', 'stablehlo'),
                               checkpoints('hints_bins'), tmp_path / 'photo.png') == 0
  assert ('temperatures 0.38 and 1, without and with hints'
          in capsys.readouterr().out)


def test_unsupported_models_are_refused(tiny_config, tiny_variables, tmp_path):
  config = tiny_model_config(tiny_config, head='mixture')
  with pytest.raises(export.ExportError, match="model.head 'mixture'"):
    export.export((tiny_variables, config, None), 'stablehlo', tmp_path / 'x.stablehlo')
  assert not list(tmp_path.iterdir())


@needs_onnx
def test_onnx_file_names_its_inputs_outputs_and_contract(exported):
  import onnx
  model = onnx.load(str(exported('tiny', 'onnx')))
  dims = lambda value: [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
  assert {v.name: dims(v) for v in model.graph.input} == {
      'l': ['height', 'width'], 'l_global': ['global_height', 'global_width']}
  assert {v.name: dims(v) for v in model.graph.output} == {
      'rgb': ['height', 'width', 3], 'probabilities': [4]}
  assert model.opset_import[0].version == 18 and model.ir_version == 8
  props = {p.key: p.value for p in model.metadata_props}
  assert json.loads(props['class_names']) == ['beach', 'forest', 'street', 'room']
  assert props['global_size'] == '32' and props['format'] == 'onnx'
  assert 'BatchNormalization' not in {node.op_type for node in model.graph.node}


def readme_examples():
  """The README's Export section's Python examples: {'onnx': code, 'stablehlo': code}."""
  section = (ROOT / 'README.md').read_text().split('## Export', 1)[1].split('\n## ', 1)[0]
  blocks = re.findall(r'```python\n(.*?)```', section, re.S)
  return {'onnx' if 'onnxruntime' in block else 'stablehlo': block for block in blocks}


@pytest.mark.parametrize('file_format', FORMATS)
def test_readme_example_runs_without_jaxcolor(file_format, exported, predictors, tmp_path):
  folder = tmp_path / 'elsewhere'
  folder.mkdir()
  (folder / f'colorizer.{file_format}').symlink_to(exported('bundled', file_format))
  height, width = SIZES['bundled'][0]  # a size Predictor has compiled already
  Image.fromarray(photo('coffee')[:height, :width]).save(folder / 'photo.jpg', quality=95)
  script = readme_examples()[file_format] + (
      "\nimport sys\nassert not {'jaxcolor', 'flax'} & set(sys.modules), sys.modules.keys()\n")
  # Nothing of the checkout on sys.path (no PYTHONPATH; the script's folder is
  # `folder`, and PYTHONSAFEPATH leaves it out too), but site-packages, the
  # user's included (pip install --user), as for someone who has the file alone.
  env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'XLA_FLAGS')}
  subprocess.run([sys.executable, '-c', script], cwd=folder, env={**env, 'PYTHONSAFEPATH': '1'},
                 check=True, timeout=300)
  written = np.asarray(Image.open(folder / 'photo_color.png'), np.int16)
  reference = predictors['bundled'](images.load_luminance(folder / 'photo.jpg').l)
  assert written.shape == (height, width, 3)
  assert np.abs(written - images.to_uint8(reference.rgb)).max() <= 1


@needs_onnx
def test_command_writes_verifies_and_keeps_existing_files(tiny_checkpoint, tmp_path):
  Image.fromarray(photo('rocket')[:37, :51]).save(tmp_path / 'photo.png')
  output = tmp_path / 'tiny.onnx'
  command = [sys.executable, str(ROOT / 'export.py'), '--checkpoint', str(tiny_checkpoint),
             '--format', 'onnx', '--output', str(output)]
  done = subprocess.run(command + ['--verify', str(tmp_path / 'photo.png')], cwd=ROOT,
                        capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr
  assert 'largest sRGB difference from jaxcolor 0.0' in done.stdout
  written = output.read_bytes()
  again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert again.returncode == 1
  assert f'{output}: already exists' in again.stderr and '--overwrite' in again.stderr
  assert output.read_bytes() == written


def test_a_failed_export_places_no_file(tiny_checkpoint, tmp_path):
  """The description cannot be placed (a folder has its name): the model file
  before it is kept as it was, and no partial file is left."""
  output = tmp_path / 'tiny.stablehlo'
  output.write_bytes(b'an older export')
  (tmp_path / 'tiny.stablehlo.json').mkdir()
  with pytest.raises(export.ExportError, match=r'tiny.stablehlo.json: cannot write'):
    export.export(tiny_checkpoint, 'stablehlo', output, overwrite=True)
  assert output.read_bytes() == b'an older export'
  assert sorted(p.name for p in tmp_path.iterdir()) == ['tiny.stablehlo', 'tiny.stablehlo.json']


@needs_onnx
def test_export_without_hard_links(tiny_checkpoint, tmp_path, monkeypatch):
  def no_links(*_):  # as exFAT, FAT and some network shares answer
    raise OSError(errno.EPERM, 'Operation not permitted')
  monkeypatch.setattr(os, 'link', no_links)
  output = tmp_path / 'tiny.onnx'
  export.export(tiny_checkpoint, 'onnx', output)
  assert output.stat().st_size > 1000 and [p.name for p in tmp_path.iterdir()] == ['tiny.onnx']


def test_help_names_the_formats():
  done = subprocess.run([sys.executable, str(ROOT / 'export.py'), '--help'], cwd=ROOT,
                        capture_output=True, text=True, timeout=120)
  assert done.returncode == 0 and '{stablehlo,onnx}' in done.stdout


def test_missing_onnx_names_the_install_command(monkeypatch, tmp_path):
  monkeypatch.setitem(sys.modules, 'onnx', None)  # import onnx now fails
  with pytest.raises(export.ExportError, match=re.escape(
      "onnx is not installed: pip install 'jaxcolor[export]' "
      '(in a clone: pip install -r requirements-export.txt)')):
    export.export(checkpoint.BUNDLED, 'onnx', tmp_path / 'x.onnx')
  assert not (tmp_path / 'x.onnx').exists()


def test_output_in_a_missing_folder_is_refused_before_any_work(tmp_path):
  with pytest.raises(export.ExportError, match='no folder'):
    export.export(tmp_path / 'no checkpoint needed', 'stablehlo', tmp_path / 'no' / 'x')
