"""Colorizing a video file: decoding, encoding and remuxing with PyAV.

PyAV's wheels bundle FFmpeg's libraries, so no system FFmpeg is needed; it is
an optional dependency (requirements-video.txt), imported only here and only
when a video is colorized.

The output keeps the input's frames, timestamps (so its frame rate, constant or
variable), size, rotation (the display matrix; frames are colorized upright),
pixel aspect ratio and audio (copied when the container plays it, AAC
otherwise). Video is H.264 (libx264, CRF 18, BT.709 4:2:0, which every common
player opens; 4:4:4 for odd sizes, which 4:2:0 cannot hold). Frames stream
through in batches: memory does not grow with the video's length. The output is
written to a hidden partial file beside it and moved into place when complete
(files.writing); a failure removes it. A file whose frames stop decoding early
(cut off, damaged) gives the frames before that, with a warning.
"""
import collections
import itertools
import os
import pathlib
import sys

import numpy as np

from jaxcolor import files
from jaxcolor import images
from jaxcolor import progress

INSTALL = "pip install 'jaxcolor[video]' (in a clone: pip install -r requirements-video.txt)"
OUTPUT_SUFFIXES = ('.mp4', '.m4v', '.mov', '.mkv')
ENCODER_OPTIONS = {'crf': '18', 'preset': 'medium'}
# Audio codecs copied as they are into .mp4/.m4v/.mov (players open them there);
# .mkv takes any. Other audio is re-encoded to AAC.
COPIED_AUDIO = ('aac', 'mp3', 'ac3', 'eac3', 'alac')
# Frames fewer than the container's index lists before a file counts as truncated
# (an edit list may hide an encoder's first frames).
MISSING_FRAMES = 2
BT709, MPEG_RANGE = 1, 1  # FFmpeg's AVCOL_* / AVCOL_RANGE_* codes


class VideoError(Exception):
  """A video that cannot be colorized; the message names the file and the problem."""


def import_av():
  """The av module, or a VideoError saying how to install it."""
  try:
    import av  # pylint: disable=import-outside-toplevel
  except ImportError:
    raise VideoError(f'colorizing videos needs PyAV, which is not installed: {INSTALL}') from None
  return av


def check_paths(source, target, overwrite):
  """Problems knowable before reading anything: a missing or empty input, an
  output that is the input, an existing output, an unknown output extension."""
  if not source.exists():
    raise VideoError(f'{source}: no such file')
  if source.is_dir():
    raise VideoError(f'{source}: is a folder, not a video')
  if source.stat().st_size == 0:
    raise VideoError(f'{source}: empty file (0 bytes)')
  if target.suffix.lower() not in OUTPUT_SUFFIXES:
    raise VideoError(f'{target}: cannot write a video with this extension; use one of '
                     f'{", ".join(OUTPUT_SUFFIXES)}')
  if target.exists() and target.resolve() == source.resolve():
    raise VideoError(f'{target}: is the input or would be written over it; not writing')
  if target.exists() and not overwrite:
    raise VideoError(files.already_exists(target))


def plan_output(source, output=None, default_folder='colorized'):
  """The output path: `output` itself, or SOURCE_NAME.mp4 in the folder `output`
  (an existing folder or a name ending in '/') or in `default_folder`."""
  name = pathlib.Path(source).stem + '.mp4'
  if output is None:
    return pathlib.Path(default_folder, name)
  if os.path.isdir(output) or str(output).endswith(('/', os.sep)):
    return pathlib.Path(output, name)
  return pathlib.Path(output)


def _open_input(av, path, max_pixels):
  """(container, video stream, audio streams), or a VideoError."""
  try:
    container = av.open(str(path))
  except PermissionError:
    raise VideoError(f'{path}: permission denied') from None
  except (av.error.FFmpegError, ValueError) as e:
    raise VideoError(f'{path}: not a video FFmpeg can read (unknown format, or a damaged or '
                     f'truncated file: {getattr(e, "strerror", None) or e})') from None
  if not container.streams.video:
    container.close()
    raise VideoError(f'{path}: has no video stream')
  video = container.streams.video[0]
  width, height = video.codec_context.width, video.codec_context.height
  if width * height > max_pixels:
    container.close()
    raise VideoError(f'{path}: {width}x{height} frames are more than the limit of {max_pixels} '
                     'pixels (raise it with --max-pixels)')
  video.thread_type = 'AUTO'
  return container, video, list(container.streams.audio)


def _decoded(av, path, container, video, on_audio, shortfall):
  """The input's video frames (av.VideoFrame) in display order; audio packets
  (and end-of-stream markers) go to `on_audio` as they are read. Frames that
  stop decoding early (a cut-off or damaged file) end the video there, with a
  message in the list `shortfall`; none at all raise VideoError."""
  streams = [video, *container.streams.audio]
  count, first_time, last_time = 0, None, None
  try:
    for packet in container.demux(streams):
      if packet.stream.type == 'audio':
        on_audio(packet)
        continue
      for frame in packet.decode():
        count += 1
        first_time = frame.time if count == 1 else first_time
        last_time = frame.time
        yield frame
  except av.error.FFmpegError as e:
    message = f'{path}: damaged data after video frame {count} (FFmpeg: {e.strerror or e})'
    if count == 0:
      raise VideoError(message) from None
    shortfall.append(message)
    return
  if count == 0:
    raise VideoError(f'{path}: has no video frames')
  missing = _missing(path, video, count, first_time, last_time)
  if missing:
    shortfall.append(missing)


def _missing(path, video, count, first_time, last_time):
  """A message when fewer frames were decoded than the container lists (their
  count, or else their duration), else None: decoders stop quietly at a cut-off end."""
  if video.frames:
    if count < video.frames - MISSING_FRAMES:
      return (f'{path}: truncated or damaged: only {count} of the {video.frames} frames its '
              'index lists could be decoded')
    return None
  listed, rate = _listed_seconds(video), video.average_rate or video.guessed_rate
  if first_time is None or last_time is None or not listed or not rate:
    return None
  decoded = last_time - first_time + 1 / rate
  if decoded < listed - (MISSING_FRAMES + 0.5) / rate:
    return (f'{path}: truncated or damaged: its {count} frames end after {decoded:.2f} s of '
            f'the {listed:.2f} s it lists')
  return None


def _listed_seconds(video):
  """The video stream's duration as its container lists it, or None."""
  if video.duration and video.time_base:
    return float(video.duration * video.time_base)
  tag = video.metadata.get('DURATION')  # Matroska's, HH:MM:SS.fraction
  try:
    hours, minutes, seconds = tag.split(':')
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
  except (AttributeError, ValueError):
    return None


def _quarter_turns(frame):
  """Counter-clockwise quarter turns that show the frame upright."""
  return round(frame.rotation / 90) % 4


class _Writer:
  """The output file: H.264 video, the input's audio, its timestamps."""

  def __init__(self, av, path, first, video_in, audio_in):
    self.av, self.path = av, path
    self.container = av.open(str(path), 'w', options=(
        {} if path.suffix.lower() == '.mkv' else {'movflags': '+faststart'}))
    self.video = self._add_video(first, video_in)
    self.audio = {stream.index: self._add_audio(stream) for stream in audio_in}

  def _add_video(self, first, video_in):
    odd = first.width % 2 or first.height % 2
    rate = video_in.average_rate or video_in.guessed_rate or 25
    stream = self.container.add_stream('libx264', rate=rate, options=ENCODER_OPTIONS)
    stream.width, stream.height = first.width, first.height
    stream.pix_fmt = 'yuv444p' if odd else 'yuv420p'
    stream.codec_context.time_base = video_in.time_base
    stream.codec_context.color_primaries = stream.codec_context.color_trc = BT709
    stream.codec_context.colorspace, stream.codec_context.color_range = BT709, MPEG_RANGE
    if video_in.sample_aspect_ratio:
      stream.sample_aspect_ratio = video_in.sample_aspect_ratio
    if first.rotation:
      stream.set_display_rotation(first.rotation)
    return stream

  def _add_audio(self, stream):
    """A copy of the input's audio stream, or an AAC one for a codec the
    container does not play; returns (output stream, whether to copy)."""
    copy = (self.path.suffix.lower() == '.mkv' or stream.codec_context.name in COPIED_AUDIO)
    if copy:
      return self.container.add_stream_from_template(stream), True
    layout = stream.codec_context.layout
    if any(channel.name == 'NONE' for channel in layout.channels):  # channels without names
      layout = 'mono' if layout.nb_channels == 1 else 'stereo'
    return self.container.add_stream('aac', rate=stream.codec_context.sample_rate,
                                     layout=layout), False

  def audio_packet(self, packet):
    """Muxes (copies or re-encodes) one input audio packet; an end-of-stream
    marker (no dts) flushes the decoder of a re-encoded stream."""
    stream, copy = self.audio[packet.stream.index]
    if copy:
      if packet.dts is not None:
        packet.stream = stream
        self.container.mux(packet)
      return
    for frame in packet.decode():  # its time goes with it: sound that starts late stays late
      self.container.mux(stream.encode(frame))

  def video_frame(self, rgb, pts, time_base):
    frame = self.av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format='rgb24')
    reformatter = self.av.video.reformatter
    frame = frame.reformat(format=self.video.pix_fmt,
                           dst_colorspace=reformatter.Colorspace.ITU709,
                           dst_color_range=reformatter.ColorRange.MPEG)
    frame.pts, frame.time_base = pts, time_base
    self.container.mux(self.video.encode(frame))

  def __enter__(self):
    return self

  def __exit__(self, error, *_):
    """Flushes the encoders and writes the index; after an error only closes the file."""
    if error is not None:
      try:
        self.container.close()
      except Exception:  # pylint: disable=broad-except
        pass  # the file is removed anyway; the first error is the one to report
      return
    self.container.mux(self.video.encode())
    for stream, copy in self.audio.values():
      if not copy:
        self.container.mux(stream.encode())
    self.container.close()


def _estimated_frames(container, video):
  """The frame count the container lists, or one from its duration; 0 if unknown."""
  if video.frames:
    return video.frames
  rate = video.average_rate or video.guessed_rate
  if container.duration and rate:
    return int(container.duration / 1e6 * rate)
  return 0


def colorize_file(colorizer, source, target, stability, strength=1.0, overwrite=False,
                  max_pixels=images.MAX_PIXELS, messages=None):
  """Colorizes the video `source` into `target` with a video.VideoColorizer
  (`stability` and `strength` as its `colorize` takes them).

  Returns a summary {frames, shots, frames_per_second (after the first)}. Raises
  VideoError (one line naming the file) for anything wrong with either file;
  `target` then does not exist, nor any partial file. A video whose frames stop
  decoding early gives the frames before that, and a warning on `messages`.
  """
  messages = messages or sys.stderr
  av = import_av()
  source, target = pathlib.Path(source), pathlib.Path(target)
  check_paths(source, target, overwrite)
  container, video, audio = _open_input(av, source, max_pixels)
  pending_audio, writer, shortfall = [], None, []  # audio read before there is a writer

  def on_audio(packet):
    (writer.audio_packet if writer else pending_audio.append)(packet)

  try:
    with container:
      frames = _decoded(av, source, container, video, on_audio, shortfall)
      first = next(frames)  # none at all raises VideoError
      turns = _quarter_turns(first)
      _say_first(source, first, video, messages)
      target.parent.mkdir(parents=True, exist_ok=True)
      with (files.writing(target, overwrite, VideoError) as partial,
            _Writer(av, partial, first, video, audio) as writer):
        for packet in pending_audio:
          writer.audio_packet(packet)
        summary = _run(colorizer, first, frames, writer, turns, (stability, strength),
                       progress.Progress(source.name, _estimated_frames(container, video),
                                         messages))
  except (av.error.FFmpegError, OSError) as e:
    raise VideoError(f'{target}: cannot write ({getattr(e, "strerror", None) or e})') from None
  for problem in shortfall:
    print(f'warning: {problem}; {target} has the {summary["frames"]} frames decoded',
          file=messages)
  return summary


def _say_first(source, first, video, messages):
  """Notes on what the output will differ in: colour dropped, 4:4:4, streams left out."""
  rgb = first.to_ndarray(format='rgb24')
  if not images.is_grey(rgb / 255.0):
    print(f'note: {source}: a colour video; colorizing from its lightness only', file=messages)
  if first.width % 2 or first.height % 2:
    print(f'note: {source}: {first.width}x{first.height} has an odd side, which 4:2:0 video '
          'cannot hold: writing H.264 4:4:4 (VLC, mpv and FFmpeg play it; some browsers and '
          'QuickTime do not)', file=messages)
  others = [s.type for s in video.container.streams if s.type not in ('video', 'audio')]
  if others or len(video.container.streams.video) > 1:
    print(f'note: {source}: only the first video stream and the audio are kept', file=messages)


def _run(colorizer, first, frames, writer, turns, settings, meter):
  """Streams every frame through the colorizer into the writer."""
  times = collections.deque()  # (pts, time base) of frames read but not yet written
  width, height = first.width, first.height

  def upright(frame):
    times.append((frame.pts, frame.time_base))
    rgb = frame.to_ndarray(format='rgb24', width=width, height=height,
                           src_color_range=frame.color_range)
    return np.ascontiguousarray(np.rot90(rgb, turns))

  done, shots, last_pts = 0, 0, None
  for rgb, starts_shot in colorizer.colorize(map(upright, itertools.chain([first], frames)),
                                             *settings):
    pts, time_base = times.popleft()
    if pts is None or (last_pts is not None and pts <= last_pts):
      pts = 0 if last_pts is None else last_pts + 1  # missing or repeated timestamps
    writer.video_frame(np.rot90(rgb, -turns), pts, time_base)
    done, shots, last_pts = done + 1, shots + starts_shot, pts
    meter.update(done)
  meter.clear()
  return {'frames': done, 'shots': shots, 'frames_per_second': meter.rate(done)}
