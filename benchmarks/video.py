"""Video colorization, frame by frame against stabilised, on clips with known colours.

  python -m benchmarks.video        # 5-7 min on 2 busy cores: a table and a JSON line
  python -m benchmarks.video --frames 16 --height 240 --width 428   # a quick look

Clips (benchmarks/video_clips.py) are made from scikit-image's colour photos: a
pan, a zoom, a cut between two photos, and a still shot with a cut-out of
another photo crossing it; their lightness has film grain and brightness
flicker. The bundled model colorizes each at stability 0 (frame by frame) and
at the default stability, and both are scored against the true colours; the
true colours on the film's lightness are scored too (the measures' floor).
Speed: frames/s through infer.py's whole path (decode, colorize, H.264 encode,
sound copied) on an 854x480 clip, each stability after a compiling run, in the
same process, so their ratio holds on a busy machine.
"""
import argparse
import json
import pathlib
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent

import jaxcolor  # noqa: E402

jaxcolor.enable_fast_cpu_convolutions()

import numpy as np  # noqa: E402
from skimage import data as skdata  # noqa: E402

from jaxcolor.apps import video  # noqa: E402
from jaxcolor import checkpoint  # noqa: E402
from jaxcolor import inference  # noqa: E402
from benchmarks import video_clips  # noqa: E402
from jaxcolor.apps import video_io  # noqa: E402

PHOTOS = {'pan': ('astronaut', 'coffee'), 'zoom': ('coffee', 'rocket'),
          'cut': ('chelsea', 'rocket'), 'object': ('coffee', 'chelsea')}
MEASURES = ('psnr', 'colourfulness', 'flicker', 'cut_change', 'moving_error')


def photo(name):
  return getattr(skdata, name)()[..., :3]


def quality(colorizer, height, width, frames, stability):
  """{kind: {'frame_by_frame' | 'stabilised' | 'truth': scores}}."""
  results = {}
  for kind, names in PHOTOS.items():
    clip = video_clips.make_clip(kind, [photo(n) for n in names], height, width, frames)
    rows = {}
    for name, value in (('frame_by_frame', 0.0), ('stabilised', stability)):
      output = np.stack([rgb for rgb, _ in colorizer.colorize(clip.grey, value)])
      rows[name] = video_clips.stability_scores(output, clip)
    rows['truth'] = video_clips.stability_scores(video_clips.true_colours_on_film(clip), clip)
    results[kind] = rows
    print(f'{kind}: done', file=sys.stderr)
  return results


def speed(colorizer, frames, stability, folder, height=480, width=854):
  """End-to-end frames/s of video_io.colorize_file at each stability."""
  clip = video_clips.make_clip('cut', [photo('chelsea'), photo('rocket')], height, width, frames)
  source = folder / 'clip.mp4'
  video_clips.write_video(source, clip.grey, audio_seconds=frames / 25)
  rates = {}
  for name, value in (('warm-up', stability), ('frame_by_frame', 0.0),
                      ('stabilised', stability)):
    start = time.perf_counter()
    video_io.colorize_file(colorizer, source, folder / f'{name}.mp4', value)
    rates[name] = frames / (time.perf_counter() - start)
  del rates['warm-up']
  return rates


def table(results, rates, stability):
  lines = ['| clip | method (stability) | PSNR dB | colourfulness | flicker a*b* | '
           'cut change a*b* | moving-pixel a*b* error |', '|---|---|---|---|---|---|---|']
  labels = {'frame_by_frame': 'frame by frame (0)', 'stabilised': f'stabilised ({stability:g})',
            'truth': 'true colours on the film'}
  for kind, rows in results.items():
    for name, scores in rows.items():
      cells = [f'{scores[m]:.2f}' if m in scores else '' for m in MEASURES]
      lines.append(f'| {kind} | {labels[name]} | ' + ' | '.join(cells) + ' |')
  ratios = [rows['stabilised']['flicker'] / rows['frame_by_frame']['flicker']
            for rows in results.values()]
  lines.append('')
  lines.append('flicker, stabilised / frame by frame: ' +
               ', '.join(f'{kind} {r:.2f}' for kind, r in zip(results, ratios)))
  lines.append('frames/s at 854x480, decode + colorize + encode: ' +
               ', '.join(f'{labels[name]} {rate:.2f}' for name, rate in rates.items()) +
               f' (ratio {rates["stabilised"] / rates["frame_by_frame"]:.2f})')
  return '\n'.join(lines)


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--height', type=int, default=480)
  parser.add_argument('--width', type=int, default=854)
  parser.add_argument('--frames', type=int, default=32, help='frames per clip')
  parser.add_argument('--speed-frames', type=int, default=32)
  parser.add_argument('--stability', type=float, default=video.DEFAULT_STABILITY)
  args = parser.parse_args()
  inference.enable_compilation_cache()
  colorizer = video.VideoColorizer(inference.Predictor.from_checkpoint(checkpoint.BUNDLED))
  results = quality(colorizer, args.height, args.width, args.frames, args.stability)
  with tempfile.TemporaryDirectory() as folder:
    rates = speed(colorizer, args.speed_frames, args.stability, pathlib.Path(folder))
  print(table(results, rates, args.stability))
  print(json.dumps({'size': [args.height, args.width], 'frames': args.frames,
                    'stability': args.stability, 'clips': results,
                    'frames_per_second_480p': rates}))


if __name__ == '__main__':
  main()
