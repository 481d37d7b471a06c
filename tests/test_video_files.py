"""infer.py --video on real video files (H.264 in MP4 and Matroska, AAC and PCM
audio) written by the test: what is kept, and what bad input gives."""
import fractions
import hashlib
import pathlib
import re
import sys

import numpy as np
import pytest

av = pytest.importorskip('av', reason='PyAV is not installed: pip install -r '
                                      'requirements-video.txt')

from conftest import photo
from jaxcolor import color
from jaxcolor.commands import infer
from benchmarks import video_clips
from jaxcolor.apps import video_io
from test_infer_cli import run_infer

HEIGHT, WIDTH, FRAMES = 64, 96, 30


@pytest.fixture(scope='module')
def clip():
  return video_clips.make_clip('cut', [photo('astronaut'), photo('coffee')], HEIGHT, WIDTH,
                               FRAMES)


@pytest.fixture(scope='module')
def film(clip, tmp_path_factory):
  """A grey 25 frames/s film with a cut, stored sideways (displayed turned by
  90 degrees), with 1.2 s of AAC sound."""
  path = tmp_path_factory.mktemp('films') / 'old film é.mp4'
  video_clips.write_video(path, clip.grey, rate=25, audio_seconds=FRAMES / 25, rotation=90)
  return path


def digest(path):
  return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def probe(path):
  """What a player sees: video stream facts, frame times, audio."""
  with av.open(str(path)) as container:
    stream = container.streams.video[0]
    frames = list(container.decode(stream))
    audio = [(s.codec_context.name, s.codec_context.sample_rate,
              float(s.duration * s.time_base)) for s in container.streams.audio]
    return {'codec': stream.codec_context.name, 'pix_fmt': stream.codec_context.pix_fmt,
            'rate': stream.average_rate, 'size': (frames[0].width, frames[0].height),
            'rotation': frames[0].rotation, 'times': [float(f.time) for f in frames],
            'audio': audio, 'rgb': np.stack([f.to_ndarray(format='rgb24') for f in frames])}


def colorize(*args):
  return infer.main([str(arg) for arg in args])


def test_a_film_keeps_its_frames_timing_size_rotation_and_sound(film, clip, tiny_checkpoint,
                                                                tmp_path):
  before = digest(film)
  out = tmp_path / 'out' / 'colour.mp4'
  result = run_infer('--video', film, '--output', out, '--checkpoint', tiny_checkpoint)
  assert result.returncode == 0, result.stderr
  assert f'-> {out} (30 frames, 2 shots, ' in result.stdout
  assert digest(film) == before  # the input is untouched
  assert sorted(p.name for p in out.parent.iterdir()) == ['colour.mp4']  # no partial file
  source, output = probe(film), probe(out)
  assert output['codec'] == 'h264' and output['pix_fmt'] == 'yuv420p'
  assert output['rate'] == source['rate'] == 25
  assert output['size'] == source['size'] == (WIDTH, HEIGHT)
  assert output['rotation'] == source['rotation'] == 90
  assert output['times'] == source['times'] and len(output['times']) == FRAMES
  assert output['audio'] == source['audio'] and output['audio'][0][0] == 'aac'
  # Colour, on each frame's own picture: its lightness matches its own input
  # frame's better than the frames' around it (gamut clipping changes some).
  lab = color.rgb_to_lab(output['rgb'] / 255.0)
  assert np.hypot(lab[..., 1], lab[..., 2]).mean() > 1.0
  grey_l = color.rgb_to_lab(source['rgb'] / 255.0)[..., 0].reshape(FRAMES, -1)
  for t in range(1, FRAMES - 1):
    match = [np.corrcoef(lab[t, ..., 0].ravel(), grey_l[s])[0, 1] for s in (t - 1, t, t + 1)]
    assert np.argmax(match) == 1 and match[1] > 0.85, (t, match)


def test_variable_frame_rate_keeps_its_timestamps(clip, tiny_checkpoint, tmp_path):
  source, out = tmp_path / 'vfr.mkv', tmp_path / 'vfr_colour.mkv'
  milliseconds = np.cumsum([0] + [40, 80, 33] * 5)[:16]
  video_clips.write_video(source, clip.grey[:16], timestamps=milliseconds)
  assert colorize('--video', source, '--output', out, '--checkpoint', tiny_checkpoint) == 0
  assert probe(out)['times'] == pytest.approx(milliseconds / 1000)


def test_odd_sizes_are_kept_in_four_four_four(clip, tiny_checkpoint, tmp_path, capsys):
  source = tmp_path / 'odd.mp4'
  video_clips.write_video(source, clip.grey[:6, :61, :95])
  assert colorize('--video', source, '--output', f'{tmp_path}/out/',
                  '--checkpoint', tiny_checkpoint) == 0
  output = probe(tmp_path / 'out' / 'odd.mp4')
  assert output['size'] == (95, 61) and output['pix_fmt'] == 'yuv444p'
  assert 'odd side' in capsys.readouterr().err


def test_pcm_sound_becomes_aac_in_mp4(clip, tiny_checkpoint, tmp_path):
  source, out = tmp_path / 'pcm.mkv', tmp_path / 'pcm.mp4'
  with av.open(str(source), 'w') as container:
    stream = container.add_stream('libx264', rate=25)
    stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, 'yuv420p'
    sound = container.add_stream('pcm_s16le', rate=8000, layout='mono')
    for i, rgb in enumerate(clip.grey[:10]):
      frame = av.VideoFrame.from_ndarray(rgb, format='rgb24')
      frame.pts = i
      container.mux(stream.encode(frame))
    container.mux(stream.encode())
    samples = av.AudioFrame.from_ndarray(np.zeros((1, 3200), np.int16), format='s16',
                                         layout='mono')
    samples.sample_rate, samples.pts = 8000, 0
    container.mux(sound.encode(samples))
  assert colorize('--video', source, '--output', out, '--checkpoint', tiny_checkpoint) == 0
  (codec, rate, seconds), = probe(out)['audio']
  assert (codec, rate) == ('aac', 8000) and seconds == pytest.approx(0.4, abs=0.3)


def test_re_encoded_sound_keeps_its_start_and_end(clip, tiny_checkpoint, tmp_path):
  """Windows Media sound (re-encoded to AAC) that starts 0.5 s into the film
  starts there in the output too, and its decoder's last samples (held until
  the end of the stream) are kept."""
  source, out = tmp_path / 'late sound.wmv', tmp_path / 'late sound.mp4'
  rate, start, seconds = 44100, 0.5, 0.7
  with av.open(str(source), 'w') as container:
    stream = container.add_stream('wmv2', rate=25)
    stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, 'yuv420p'
    sound = container.add_stream('wmav2', rate=rate, layout='mono')
    sound.bit_rate = 64000
    for i, rgb in enumerate(clip.grey):  # 1.2 s
      frame = av.VideoFrame.from_ndarray(rgb, format='rgb24')
      frame.pts = i
      container.mux(stream.encode(frame))
    container.mux(stream.encode())
    size = sound.codec_context.frame_size  # known once the encoders are open
    tone = np.sin(np.arange(int(seconds * rate)) * 2 * np.pi * 440 / rate).astype(np.float32)
    for first in range(0, len(tone), size):
      samples = av.AudioFrame.from_ndarray(0.2 * tone[None, first:first + size], format='fltp',
                                           layout='mono')
      samples.sample_rate, samples.pts = rate, int(start * rate) + first
      samples.time_base = fractions.Fraction(1, rate)
      container.mux(sound.encode(samples))
    container.mux(sound.encode())
  assert colorize('--video', source, '--output', out, '--checkpoint', tiny_checkpoint) == 0
  sound_in, sound_out = decoded_sound(source), decoded_sound(out)
  assert sound_out['codec'] == 'aac'
  # Within AAC's first frame (encoder delay; 1024 samples) and the input's millisecond times.
  assert sound_out['start'] == pytest.approx(sound_in['start'], abs=1024 / rate + 0.002)
  assert sound_out['samples'] >= sound_in['samples']  # AAC adds some: its start and last frame


def decoded_sound(path):
  """The first audio stream's codec, first decoded time (s) and sample count."""
  with av.open(str(path)) as container:
    stream = container.streams.audio[0]
    frames = list(container.decode(stream))
    return {'codec': stream.codec_context.name, 'start': float(frames[0].time),
            'samples': sum(frame.samples for frame in frames)}


def unreadable(film, clip, folder):
  """{file: what its error line must say}: files with no frame to colorize."""
  data = film.read_bytes()
  files = {'truncated.mp4': (data[:len(data) // 2], 'not a video FFmpeg can read'),  # no index
           'text.mp4': (b'this is a text file', 'not a video FFmpeg can read'),
           'random.avi': (np.random.default_rng(0).bytes(4000), 'not a video FFmpeg can read'),
           'empty.mp4': (b'', 'empty file (0 bytes)')}
  for name, (content, _) in files.items():
    (folder / name).write_bytes(content)
  with av.open(str(folder / 'no_frames.mkv'), 'w') as container:  # a video stream, no frames
    stream = container.add_stream('libx264', rate=25)
    stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, 'yuv420p'
    video_clips.write_tone(container, container.add_stream('aac', rate=8000), 0.2)
  with av.open(str(folder / 'sound.m4a'), 'w') as container:
    video_clips.write_tone(container, container.add_stream('aac', rate=8000), 0.2)
  return {**{folder / name: message for name, (_, message) in files.items()},
          folder / 'no_frames.mkv': 'has no video frames',
          folder / 'sound.m4a': 'has no video stream',
          folder / 'missing.mp4': 'no such file'}


def cut_short(film, clip, folder):
  """{file: what its warning must say}: files whose frames stop decoding early."""
  corrupt = bytearray(film.read_bytes())
  corrupt[len(corrupt) // 3:len(corrupt) // 3 + 3000] = bytes(3000)
  (folder / 'corrupt.mp4').write_bytes(bytes(corrupt))
  fast = folder / 'faststart.mp4'  # index first, so the frames it lists are known
  video_clips.write_video(fast, clip.grey, faststart=True)
  (folder / 'cut_short.mp4').write_bytes(fast.read_bytes()[:fast.stat().st_size // 3])
  video_clips.write_video(folder / 'whole.mkv', clip.grey)
  whole = (folder / 'whole.mkv').read_bytes()
  (folder / 'cut_short.mkv').write_bytes(whole[:len(whole) * 2 // 3])
  return {folder / 'corrupt.mp4': 'damaged data after video frame (\\d+)',
          folder / 'cut_short.mp4': f'truncated or damaged: only (\\d+) of the {FRAMES} frames',
          folder / 'cut_short.mkv': 'truncated or damaged: its (\\d+) frames end after'}


def test_videos_without_frames_give_one_line_errors_and_no_output(film, clip, tiny_checkpoint,
                                                                  tmp_path, capsys):
  folder = tmp_path / 'bad'
  folder.mkdir()
  for source, message in unreadable(film, clip, folder).items():
    before = source.exists() and digest(source)
    out = tmp_path / 'out' / f'{source.name}.mp4'
    assert colorize('--video', source, '--output', out, '--checkpoint', tiny_checkpoint) == 1
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith(f'error: {source}: '), errors
    assert message in errors[0], errors
    assert (source.exists() and digest(source)) == before
    assert not out.parent.exists() or not list(out.parent.iterdir())  # no output, no partial


def test_videos_cut_short_keep_the_frames_decoded_with_a_warning(film, clip, tiny_checkpoint,
                                                                 tmp_path, capsys):
  folder = tmp_path / 'short'
  folder.mkdir()
  for source, message in cut_short(film, clip, folder).items():
    out = tmp_path / 'out' / f'{source.name}.mp4'
    assert colorize('--video', source, '--output', out, '--checkpoint', tiny_checkpoint) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if 'warning' in line]
    kept = len(probe(out)['times'])
    assert 0 < kept < FRAMES
    assert len(warnings) == 1 and re.match(
        f'warning: {re.escape(str(source))}: {message}.*; {re.escape(str(out))} has the '
        f'{kept} frames decoded$', warnings[0]), warnings
    assert re.search(message, warnings[0]).group(1) == str(kept)
  assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == [
      f'{name}.mp4' for name in ('corrupt.mp4', 'cut_short.mkv', 'cut_short.mp4')]


def test_an_existing_output_is_kept_unless_overwrite(film, tiny_checkpoint, tmp_path, capsys):
  out = tmp_path / 'colour.mp4'
  out.write_bytes(b'precious')
  (tmp_path / 'colour.partial.mp4').write_bytes(b'mine too')  # a name partial files once had
  assert colorize('--video', film, '--output', out, '--checkpoint', tiny_checkpoint) == 1
  assert capsys.readouterr().err.strip() == (
      f'error: {out}: already exists; not replacing it (use --overwrite)')
  broken = tmp_path / 'broken.mp4'
  broken.write_bytes(film.read_bytes()[:2000])
  assert colorize('--video', broken, '--output', out, '--checkpoint', tiny_checkpoint,
                  '--overwrite') == 1
  assert out.read_bytes() == b'precious'  # a failed run replaces nothing
  assert colorize('--video', film, '--output', out, '--checkpoint', tiny_checkpoint,
                  '--overwrite', '--stability', '0') == 0
  assert len(probe(out)['times']) == FRAMES
  assert (tmp_path / 'colour.partial.mp4').read_bytes() == b'mine too'
  assert sorted(p.name for p in tmp_path.iterdir()) == ['broken.mp4', 'colour.mp4',
                                                         'colour.partial.mp4']


def test_frames_over_the_pixel_limit_are_refused(film, tiny_checkpoint, tmp_path, capsys):
  out = tmp_path / 'big.mp4'
  assert colorize('--video', film, '--output', out, '--checkpoint', tiny_checkpoint,
                  '--max-pixels', WIDTH * HEIGHT - 1) == 1
  assert capsys.readouterr().err.strip() == (
      f'error: {film}: {WIDTH}x{HEIGHT} frames are more than the limit of '
      f'{WIDTH * HEIGHT - 1} pixels (raise it with --max-pixels)')
  assert not out.exists()


@pytest.mark.parametrize('output,message', [
    (None, 'is the input or would be written over it; not writing'),
    ('colour.avi', 'cannot write a video with this extension; use one of .mp4, .m4v, .mov, '
                   '.mkv'),
])
def test_outputs_that_cannot_be(film, tmp_path, capsys, output, message):
  before = digest(film)
  target = film if output is None else tmp_path / output
  assert colorize('--video', film, '--output', target, '--overwrite') == 1
  assert capsys.readouterr().err.strip() == f'error: {target}: {message}'
  assert digest(film) == before and (output is None or not target.exists())


def test_without_pyav_says_how_to_install_it(film, tmp_path, monkeypatch, capsys):
  monkeypatch.setitem(sys.modules, 'av', None)  # what a failed import finds
  assert colorize('--video', film, '--output', tmp_path / 'x.mp4') == 1
  assert capsys.readouterr().err.strip() == (
      "error: colorizing videos needs PyAV, which is not installed: pip install "
      "'jaxcolor[video]' (in a clone: pip install -r requirements-video.txt)")


def test_default_output_and_options_that_are_for_images(film, tmp_path, monkeypatch, capsys):
  monkeypatch.chdir(tmp_path)
  assert video_io.plan_output(film) == pathlib.Path('colorized', film.stem + '.mp4')
  assert video_io.plan_output(film, 'out/') == pathlib.Path('out', film.stem + '.mp4')
  for extra in (['--topk', '3'], ['--stability', '2']):
    with pytest.raises(SystemExit):
      infer.parse_args(['--video', str(film), *extra])
  errors = capsys.readouterr().err
  assert 'apply to images only' in errors and '--stability must be between 0 and 1' in errors

