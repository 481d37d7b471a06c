"""Test clips with known colours, made from colour photos, and how steady a
colorization of them is.

No black-and-white film comes with its true colours, so clips are made from
colour photos: a camera pans over one, zooms into one, cuts from one to another,
or holds still while a cut-out of another moves across. Their lightness gets
film grain and a little brightness flicker; the clean colour frames are the
truth. tests/test_video.py and benchmarks/video.py both use these clips.
"""
import dataclasses
import fractions

import numpy as np
from PIL import Image

from jaxcolor.apps import evaluation
from jaxcolor.apps import video_io
from jaxcolor import color

KINDS = ('pan', 'zoom', 'cut', 'object')
GRAIN = 3.0      # standard deviation of the film grain, L* (0-100)
FLICKER = 0.03   # frames' brightness gains are uniform in 1 +- this
# A pixel whose true L*, a* and b* each change by less than this between two
# frames is still: the flicker figure is measured on still pixels only.
STILL = 1.0


@dataclasses.dataclass
class Clip:
  kind: str
  truth: np.ndarray  # N x H x W x 3 uint8 sRGB: the true colours
  grey: np.ndarray   # N x H x W x 3 uint8 sRGB grey: the film (grain, flicker)
  cuts: list         # frames that start a new shot, besides frame 0


def _frame(photo, box, height, width):
  """The photo's (left, top, right, bottom) box, resampled to width x height."""
  return np.asarray(Image.fromarray(photo).resize((width, height), Image.BICUBIC, box=box))


def _fit(photo, height, width, scale):
  """(width, height) of the largest box of the frame's aspect that fits in
  the photo, times `scale`."""
  photo_h, photo_w, _ = photo.shape
  box_w = min(photo_w, photo_h * width / height) * scale
  return box_w, box_w * height / width


def _pan(photo, height, width, frames, scale=0.75):
  """A camera moving diagonally across the photo, corner to corner."""
  box_w, box_h = _fit(photo, height, width, scale)
  photo_h, photo_w, _ = photo.shape
  steps = np.linspace(0.0, 1.0, frames)
  return [_frame(photo, (s * (photo_w - box_w), s * (photo_h - box_h),
                         s * (photo_w - box_w) + box_w, s * (photo_h - box_h) + box_h),
                 height, width) for s in steps]


def _zoom(photo, height, width, frames):
  """A camera zooming into the photo's centre, to 1.4x."""
  box_w, box_h = _fit(photo, height, width, 1.0)
  centre_x, centre_y = photo.shape[1] / 2, photo.shape[0] / 2
  boxes = [(box_w / z, box_h / z) for z in np.geomspace(1.0, 1.4, frames)]
  return [_frame(photo, (centre_x - w / 2, centre_y - h / 2, centre_x + w / 2,
                         centre_y + h / 2), height, width) for w, h in boxes]


def _object(background, thing, height, width, frames):
  """A still shot of one photo with a cut-out of another crossing it."""
  still = _frame(background, (0, 0, *_fit(background, height, width, 1.0)), height, width)
  side = max(2, min(height, width) // 3)
  patch = _frame(thing, (0, 0, *_fit(thing, 1, 1, 1.0)), side, side)
  top = (height - side) // 2
  clip = []
  for left in np.linspace(0, width - side, frames).round().astype(int):
    frame = still.copy()
    frame[top:top + side, left:left + side] = patch
    clip.append(frame)
  return clip


def _film(truth, rng):
  """Grain (spatially correlated, GRAIN L* deviation) and brightness flicker on
  the lightness of the true frames -> grey sRGB frames."""
  lightness = color.rgb_to_lab(truth / 255.0)[..., 0]
  grain = rng.standard_normal(lightness.shape)
  grain = (grain + np.roll(grain, 1, axis=1) + np.roll(grain, 1, axis=2)
           + np.roll(grain, (1, 1), axis=(1, 2))) / 2.0  # 2x2 grain clumps, still unit deviation
  gains = rng.uniform(1.0 - FLICKER, 1.0 + FLICKER, (len(truth), 1, 1))
  lightness = np.clip(lightness * gains + GRAIN * grain, 0.0, color.L_MAX)
  return np.round(color.grey_rgb(lightness / color.L_MAX) * 255.0).astype(np.uint8)


def make_clip(kind, photos, height, width, frames, seed=0):
  """A Clip of `kind` (one of KINDS) from two colour photos (H x W x 3 uint8)."""
  first, second = photos[0], photos[1 % len(photos)]
  cuts = []
  if kind == 'pan':
    truth = _pan(first, height, width, frames)
  elif kind == 'zoom':
    truth = _zoom(first, height, width, frames)
  elif kind == 'cut':
    cut = frames // 2
    truth = (_pan(first, height, width, cut, scale=0.9)
             + _pan(second, height, width, frames - cut, scale=0.9))
    cuts = [cut]
  elif kind == 'object':
    truth = _object(first, second, height, width, frames)
  else:
    raise ValueError(f'unknown clip kind {kind!r}; one of {KINDS}')
  truth = np.stack(truth)
  return Clip(kind, truth, _film(truth, np.random.default_rng(seed)), cuts)


def true_colours_on_film(clip):
  """The truth's a*b* on the film's lightness (grain, flicker), as uint8 frames:
  what a perfect colorizer would output, so its flicker is the measure's floor
  (8-bit rounding and gamut clipping move a*b* with the grain)."""
  lab = color.rgb_to_lab(clip.truth / 255.0)
  lab[..., 0] = color.rgb_to_lab(clip.grey / 255.0)[..., 0]
  return np.round(color.lab_to_rgb(lab) * 255.0).astype(np.uint8)


def _ab(frames):
  return color.rgb_to_lab(frames / 255.0)[..., 1:]


def stability_scores(output, clip):
  """Scores of colorized frames (N x H x W x 3 uint8) against the clip's truth.

  psnr, colourfulness: means over frames. flicker: the mean distance in the
  a*b* plane between consecutive output frames, on pixels still in the truth
  (cuts left out). cut_change: the same over all pixels, across each cut.
  moving_error: the a*b* distance to the truth on pixels that move.
  """
  truth_lab = color.rgb_to_lab(clip.truth / 255.0)
  ab = _ab(output)
  pairs = [t for t in range(1, len(output)) if t not in clip.cuts]
  still = np.stack([(np.abs(truth_lab[t] - truth_lab[t - 1]) < STILL).all(axis=-1)
                    for t in pairs])
  step = np.stack([np.linalg.norm(ab[t] - ab[t - 1], axis=-1) for t in pairs])
  error = np.stack([np.linalg.norm(ab[t] - truth_lab[t, ..., 1:], axis=-1) for t in pairs])
  scores = {
      'psnr': float(np.mean([evaluation.psnr(o / 255.0, t / 255.0)
                             for o, t in zip(output, clip.truth)])),
      'colourfulness': float(np.mean([evaluation.colourfulness(o / 255.0) for o in output])),
      'flicker': float(step[still].mean()),
      'moving_error': float(error[~still].mean()) if (~still).any() else float('nan'),
  }
  if clip.cuts:
    scores['cut_change'] = float(np.mean(
        [np.linalg.norm(ab[c] - ab[c - 1], axis=-1).mean() for c in clip.cuts]))
  return scores


def write_video(path, frames, rate=25, audio_seconds=None, rotation=0, timestamps=None,
                faststart=False):
  """Writes uint8 sRGB frames (N x H x W x 3) as near-lossless H.264 in
  the container its extension names, with a 440 Hz AAC tone of `audio_seconds`
  (None: none). `rotation`: display rotation, degrees counter-clockwise.
  `timestamps`: each frame's time in milliseconds (a variable frame rate).
  `faststart`: an MP4 with its index before the frames."""
  av = video_io.import_av()
  options = {'movflags': '+faststart'} if faststart else {}
  with av.open(str(path), 'w', options=options) as container:
    stream = container.add_stream('libx264', rate=rate, options={'crf': '10'})
    stream.height, stream.width = frames.shape[1:3]
    stream.pix_fmt = 'yuv444p' if stream.height % 2 or stream.width % 2 else 'yuv420p'
    stream.codec_context.time_base = fractions.Fraction(1, rate if timestamps is None else 1000)
    if rotation:
      stream.set_display_rotation(rotation)
    sound = audio_seconds and container.add_stream('aac', rate=48000, layout='mono')
    for i, rgb in enumerate(frames):
      frame = av.VideoFrame.from_ndarray(rgb, format='rgb24')
      frame.pts = i if timestamps is None else timestamps[i]
      frame.time_base = stream.codec_context.time_base
      container.mux(stream.encode(frame))
    container.mux(stream.encode())
    if sound:
      write_tone(container, sound, audio_seconds)


def write_tone(container, stream, seconds, chunk=1024):
  """Encodes `seconds` of a 440 Hz tone into the AAC `stream` of `container`."""
  av = video_io.import_av()
  rate = stream.codec_context.sample_rate
  tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * rate)) / rate))
  for start in range(0, len(tone), chunk):
    frame = av.AudioFrame.from_ndarray(tone[None, start:start + chunk].astype(np.float32),
                                       format='fltp', layout='mono')
    frame.sample_rate, frame.pts = rate, start
    container.mux(stream.encode(frame))
  container.mux(stream.encode())
