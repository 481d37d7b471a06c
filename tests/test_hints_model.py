"""A model that takes colour hints: its input, both paths, tiles, training examples,
fine-tuning, and the commands that pass hints to it."""
import json

import numpy as np
from PIL import Image
import pytest

from conftest import photo
from conftest import tiny_model_config
from jaxcolor import checkpoint
from jaxcolor import color
from jaxcolor import hints
from jaxcolor import inference
from jaxcolor import model as model_lib
from jaxcolor.commands import evaluate
from jaxcolor.commands import infer
from jaxcolor.training import config_checks
from jaxcolor.training import input_pipeline
from jaxcolor.training import trainer
from test_inference import photo_l

BLUE = (10.0, -60.0)


def hints_config(tiny_config):
  return tiny_model_config(tiny_config, hints=True)


@pytest.fixture(scope='module')
def hint_predictor(tiny_config, hint_variables):
  return inference.Predictor(hint_variables, hints_config(tiny_config))


def test_new_hint_weights_are_zero_so_without_hints_nothing_changes(tiny_config, tiny_variables):
  automatic = inference.Predictor(tiny_variables, tiny_config.model)
  steerable = inference.Predictor(hints.with_hint_inputs(tiny_variables),
                                  hints_config(tiny_config))
  l = photo_l('coffee', 72, 100)
  # Equal up to float32 rounding: a 4-channel first convolution sums in another order.
  np.testing.assert_allclose(steerable(l).rgb, automatic(l).rgb, atol=0.1 / 255)
  np.testing.assert_allclose(steerable(l).probabilities, automatic(l).probabilities, atol=1e-5)
  assert steerable.has_hints and not automatic.has_hints
  with pytest.raises(ValueError, match='already has 4 input channels'):
    hints.with_hint_inputs(steerable.variables)


def test_a_hint_recolours_beyond_the_local_path_s_reach(hint_predictor):
  """Only the global path sees a hint in one corner from the opposite one."""
  l = photo_l('astronaut', 200, 200)
  hint = hints.Hint(5, 5, 6, BLUE)
  reach = model_lib.LOCAL_REACH
  assert 200 - 5 - 3 > reach + 8
  without, with_hint = hint_predictor(l), hint_predictor(l, hints=[hint])
  far = np.abs(with_hint.ab - without.ab)[-(200 - 5 - 3 - reach - 8):, -(200 - 5 - 3 - reach - 8):]
  assert far.max() > 0.05  # a*b* units, well above float32 rounding (~1e-5)


def test_hinted_pixels_keep_their_hint_s_colour_exactly(hint_predictor):
  l = photo_l('coffee', 60, 80)
  marks = [hints.Hint(10, 12, 4, BLUE), hints.Hint(70, 50, 1, (50.0, 20.0)),
           hints.Hint(12, 13, 3, (-30.0, 40.0))]  # overlaps the first: the later one counts
  result, plain = hint_predictor(l, hints=marks), hint_predictor(l)
  planes = hints.rasterize(marks, 60, 80)
  hinted = planes[..., 2] > 0
  np.testing.assert_allclose(result.ab[hinted], planes[hinted][:, :2] * hints.AB_SCALE,
                             atol=1e-4)
  assert np.abs(result.ab[12:15, 11:14] - (-30.0, 40.0)).max() < 1e-4
  assert hinted.sum() == 4 * 4 + 1 + 3 * 3 - 2 * 3  # patches as the hint file defines them
  assert np.abs(plain.ab[hinted] - result.ab[hinted]).max() > 1.0  # the model's own differ
  # the exact colours are drawn into the result; around them it is the network's
  np.testing.assert_allclose(result.rgb[hinted], color.lab_to_rgb(np.concatenate(
      [l[hinted][:, None] * 100, result.ab[hinted]], axis=-1)).clip(0, 1), atol=1e-5)


def test_any_number_of_hints_runs_one_compiled_program(tiny_config, hint_variables):
  predictor = inference.Predictor(hint_variables, hints_config(tiny_config))
  l = photo_l('chelsea', 48, 64)
  results = [predictor(l, hints=[hints.Hint(10 + i, 20, 3, BLUE) for i in range(n)])
             for n in (0, 1, 7)]
  assert predictor.trace_count == 1
  assert not np.allclose(results[0].ab, results[1].ab)


def test_tiles_equal_the_whole_image_with_hints(tiny_config, hint_variables, hint_predictor):
  l = photo_l('astronaut', 150, 100)
  marks = [hints.Hint(3, 140, 5, BLUE), hints.Hint(90, 70, 9, (50.0, 20.0))]
  tiled = inference.Predictor(hint_variables, hints_config(tiny_config), tile=64)
  np.testing.assert_allclose(tiled(l, hints=marks).rgb, hint_predictor(l, hints=marks).rgb,
                             atol=0.1 / 255)  # float32 rounding only


def test_hints_need_a_model_that_takes_them(tiny_config, tiny_variables, hint_predictor):
  automatic = inference.Predictor(tiny_variables, tiny_config.model)
  l = photo_l('coffee', 40, 40)
  with pytest.raises(ValueError, match='takes no colour hints'):
    automatic(l, hints=[hints.Hint(1, 1, 1, BLUE)])
  with pytest.raises(ValueError, match='cannot be combined'):
    hint_predictor(l, style_l=l, hints=[hints.Hint(1, 1, 1, BLUE)])


def test_training_crops_carry_seeded_hints_in_both_views(tiny_config):
  config = tiny_config.copy_and_resolve_references()
  config.model.hints = True
  config.data.global_view = 'photo'
  part = input_pipeline.Part('photos', [])
  options = input_pipeline._example_options(config, part)
  example = {'image': photo('rocket')}
  first = input_pipeline._train_example(example, np.random.default_rng(5), **options)
  again = input_pipeline._train_example(example, np.random.default_rng(5), **options)
  for key in first:
    np.testing.assert_array_equal(first[key], again[key])
  size, g = config.data.crop_size, config.model.global_size
  assert first['hints'].shape == (size, size, 3) and first['l_global'].shape == (g, g, 4)
  counts = []
  for seed in range(40):
    crop = input_pipeline._train_example(example, np.random.default_rng(seed), **options)
    mask = crop['hints'][..., 2] > 0
    counts.append(mask.any())
    if mask.any():  # the planes hold the truth's colours (patch means) where hinted
      assert crop['l_global'][..., 3].max() > 0
      truth = color.denormalize_ab(crop['ab'])[mask]
      hinted = crop['hints'][mask][:, :2] * hints.AB_SCALE
      assert np.abs(hinted.mean(0) - truth.mean(0)).max() < 25
  assert 0.6 < np.mean(counts) < 1  # about one crop in eight has none
  plain = input_pipeline._eval_example(example, **options)
  assert not plain['hints'].any() and not plain['l_global'][..., 1:].any()


def test_fine_tuning_with_hints_starts_from_an_automatic_checkpoint(train_config, tiny_checkpoint,
                                                                     tmp_path):
  train_config.model.hints = True
  train_config.data.labels = 'none'
  train_config.init_from = str(tiny_checkpoint)
  train_config.num_train_steps = 2
  train_config.data.val_folder = ''  # no validation: one program less to compile
  state = trainer.train_and_evaluate(train_config, tmp_path)
  kernel = state.params['low_level']['conv1']['conv']['kernel']
  start = checkpoint.load(tiny_checkpoint)[0]['params']['low_level']['conv1']['conv']['kernel']
  assert kernel.shape[2] == 4 and np.abs(kernel[:, :, 1:]).max() > 0  # the hints were learnt
  assert np.abs(kernel[:, :, :1] - start).max() < 0.1  # ... from the automatic model's weights
  variables, model_config, _ = checkpoint.load(tmp_path / 'checkpoints')
  assert model_config.hints and inference.Predictor(variables, model_config).has_hints
  train_config.model.hints, train_config.init_from = False, ''  # resuming as another model
  with pytest.raises(config_checks.ConfigError, match='does not fit this config'):
    trainer.train_and_evaluate(train_config, tmp_path)
  train_config.init_from = str(tmp_path / 'nowhere')
  with pytest.raises(Exception, match='init_from'):
    trainer.train_and_evaluate(train_config, tmp_path / 'again')


def write_hints(path, *entries):
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps({'version': 1, 'hints': list(entries)}))
  return path


def test_infer_takes_a_hint_file_or_a_folder_laid_out_like_the_output(hint_checkpoint, tmp_path,
                                                                      capsys):
  photos = tmp_path / 'scans'
  (photos / '1920').mkdir(parents=True)
  Image.fromarray(photo('coffee')[:90, :120]).save(photos / '1920' / 'a.png')
  Image.fromarray(photo('chelsea')[:80, :64]).save(photos / 'b.jpg', quality=95)
  Image.fromarray(photo('rocket')[:64, :64]).save(photos / 'c.png')
  given = tmp_path / 'given'
  write_hints(given / '1920' / 'a.png.json', {'x': 60, 'y': 45, 'size': 9, 'color': '#2050e0'})
  write_hints(given / 'b.jpg.json', {'x': 70, 'y': 5, 'ab': [0, 0]})  # outside: 64 wide
  write_hints(given / 'stray.jpg.json', {'x': 1, 'y': 1, 'ab': [0, 0]})
  out = tmp_path / 'out'
  code = infer.main(['--image', str(photos), '--checkpoint', str(hint_checkpoint),
                     '--output', str(out), '--hints', str(given)])
  captured = capsys.readouterr()
  assert code == 1  # b.jpg's hints are bad; the others are colorized
  assert f'{given / "b.jpg.json"}: hint 0: the point (70, 5) is outside the 64x80 image' in (
      captured.err)
  assert f'warning: {given / "stray.jpg.json"}: a hint file that matches no input' in captured.err
  assert not (out / 'b.jpg').exists() and (out / 'c.png').exists()
  assert f'(1 hints from {given / "1920" / "a.png.json"})' in captured.out
  steered = np.asarray(Image.open(out / '1920' / 'a.png'))
  assert infer.main(['--image', str(photos / '1920' / 'a.png'), '--checkpoint',
                     str(hint_checkpoint), '--output', str(tmp_path / 'plain.png')]) == 0
  plain = np.asarray(Image.open(tmp_path / 'plain.png'))
  assert np.abs(steered.astype(int) - plain).max() > 2
  # One hint file for one input gives the same bytes as the folder.
  assert infer.main(['--image', str(photos / '1920' / 'a.png'), '--checkpoint',
                     str(hint_checkpoint), '--output', str(tmp_path / 'one.png'),
                     '--hints', str(given / '1920' / 'a.png.json')]) == 0
  assert (tmp_path / 'one.png').read_bytes() == (out / '1920' / 'a.png').read_bytes()


def test_infer_refuses_hints_it_cannot_use(hint_checkpoint, tiny_checkpoint, tmp_path, capsys):
  image = tmp_path / 'a.png'
  Image.fromarray(photo('coffee')[:40, :40]).save(image)
  file = write_hints(tmp_path / 'a.png.json', {'x': 1, 'y': 1, 'ab': [0, 0]})
  assert infer.main(['--image', str(image), '--checkpoint', str(tiny_checkpoint),
                     '--hints', str(file), '--output', str(tmp_path / 'x.png')]) == 2
  assert 'takes no colour hints' in capsys.readouterr().err
  with pytest.raises(SystemExit) as exit_:
    infer.main(['--image', str(image), '--style', str(image), '--hints', str(file)])
  assert exit_.value.code == 2 and 'cannot be combined' in capsys.readouterr().err
  with pytest.raises(SystemExit) as exit_:
    infer.main(['--video', 'film.mp4', '--hints', str(file)])
  assert exit_.value.code == 2 and 'apply to images only' in capsys.readouterr().err
  assert infer.main(['--image', str(image), str(image.with_name('b.png')), '--checkpoint',
                     str(hint_checkpoint), '--hints', str(file)]) == 2
  assert 'is one hint file, but 2 inputs' in capsys.readouterr().err
  assert not (tmp_path / 'x.png').exists()


def test_evaluate_with_simulated_hints(hint_checkpoint, tiny_checkpoint, tmp_path, capsys):
  photos = tmp_path / 'photos'
  photos.mkdir()
  for name in ('coffee', 'astronaut'):
    Image.fromarray(photo(name)[:96, :128]).save(photos / f'{name}.png')
  psnr = {}
  for count in (0, 10):
    out = tmp_path / f'eval{count}'
    assert evaluate.main(['--folder', str(photos), '--checkpoint', str(hint_checkpoint),
                          '--output', str(out), '--hints', str(count)]) == 0
    results = json.loads((out / 'results.json').read_text())
    assert results['protocol']['hints'] == count
    psnr[count] = results['summary']['model']['psnr']
  assert psnr[10] != psnr[0]
  assert evaluate.main(['--folder', str(photos), '--checkpoint', str(tiny_checkpoint),
                        '--output', str(tmp_path / 'no'), '--hints', '1']) == 2
  assert 'takes no colour hints' in capsys.readouterr().err


def test_films_and_exports_with_a_model_that_takes_hints(tiny_config, tiny_variables, tmp_path):
  """Films get no hints: a model given hint inputs colours them as the model it came from."""
  from benchmarks import video_clips
  from jaxcolor.apps import export
  from jaxcolor.apps import video
  frames = video_clips.make_clip('pan', [photo('astronaut'), photo('coffee')], 48, 64, 6).grey
  outputs = []
  for variables, config in ((tiny_variables, tiny_config.model),
                            (hints.with_hint_inputs(tiny_variables), hints_config(tiny_config))):
    colorizer = video.VideoColorizer(inference.Predictor(variables, config))
    outputs.append(np.stack([rgb for rgb, _ in colorizer.colorize(frames, 0.5)]))
  assert np.abs(outputs[0].astype(int) - outputs[1]).max() <= 1
  # Exported, with empty hint planes it colours as the model it came from.
  l = photo_l('astronaut', 48, 64)
  paths = export.export((hints.with_hint_inputs(tiny_variables), hints_config(tiny_config),
                         None), 'stablehlo', tmp_path / 'x.mlir')
  rgb, _ = export.load_stablehlo(paths[0])(l, l, hints=np.zeros(l.shape + (3,), np.float32))
  reference = inference.Predictor(tiny_variables, tiny_config.model)(l).rgb
  assert np.abs(rgb - reference).max() < 0.5 / 255
