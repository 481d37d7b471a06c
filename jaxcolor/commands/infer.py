"""Colorize black-and-white photos.

  python infer.py --image old_photo.jpg                  # -> colorized/old_photo.jpg
  python infer.py --image scans/ --output out/ --topk 3  # scans/1920/a.jpg -> out/1920/a.jpg
  python infer.py --image portrait.jpg --style sunset.jpg --side-by-side
  python infer.py --image old_photo.jpg --strength 1.4   # more saturated colours
  python infer.py --video old_film.mp4                   # -> colorized/old_film.mp4
  python infer.py --image a.jpg --hints a.jpg.json       # colours you chose (a model with hints)

Folders are searched recursively. In the output folder every result keeps its
input's path relative to the folder that holds all inputs (a/x.jpg and b/x.jpg
-> out/a/x.jpg and out/b/x.jpg), so one result never replaces another.
"""
import argparse
import pathlib
import sys

from absl import logging

import jaxcolor
from jaxcolor.apps import batch
from jaxcolor.apps import video
from jaxcolor.apps import video_io
from jaxcolor import checkpoint
from jaxcolor import color
from jaxcolor.commands import options
from jaxcolor import images
from jaxcolor import inference


def parse_args(argv):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  source = parser.add_mutually_exclusive_group(required=True)
  source.add_argument('--image', nargs='+',
                      help='image files, globs or folders to colorize; folders are searched '
                           'recursively, leaving out hidden files and folders and the output '
                           'folder')
  source.add_argument('--video', help='a video file to colorize into an H.264 video with the '
                      'same frames, timing and audio (see README: Video)')
  parser.add_argument('--stability', type=float, default=video.DEFAULT_STABILITY,
                      help='videos: how firmly colours hold still within a shot, from 0 (every '
                           'frame on its own) to 1 (default: %(default)s)')
  parser.add_argument('--output', help='an image file name (one input only) or a folder '
                      f'(default: {batch.DEFAULT_OUTPUT}/), where results keep their inputs\' '
                      'paths relative to the folder that holds all inputs')
  options.add_checkpoint(parser)
  parser.add_argument('--style', help='take the global features (scene, mood) from this image')
  parser.add_argument('--hints', metavar='PATH',
                      help='colour hints (a hint file, see README: Colour hints) for a model '
                           'that takes them: one file for one input, or a folder laid out like '
                           'the output folder (the hints for 1920/a.jpg are in '
                           'PATH/1920/a.jpg.json)')
  parser.add_argument('--topk', type=int, default=0, metavar='N',
                      help='print the N likeliest scene labels of each image')
  options.add_strength(parser, 'colour strength: 0 grey, 1 the model\'s colours, up to '
                      f'{color.MAX_STRENGTH:g} more saturated (default: %(default)s)')
  options.add_temperature(parser)
  parser.add_argument('--side-by-side', action='store_true',
                      help='write the grey input and the colorized result side by side')
  parser.add_argument('--overwrite', action='store_true',
                      help='replace existing output files (never an input, nor another '
                           'result of this run)')
  parser.add_argument('--max-pixels', type=int, default=images.MAX_PIXELS,
                      help='refuse larger images (default: %(default)s)')
  parser.add_argument('--tile', type=int, default=inference.DEFAULT_TILE, metavar='N',
                      help='colorize images with a side above N in overlapping tiles: the same '
                           'result in less memory; 0 never tiles (default: %(default)s)')
  args = parser.parse_args(argv)
  if args.tile < 0 or args.tile % 8:
    parser.error('--tile must be 0 or a positive multiple of 8')
  if not 0 <= args.stability <= 1:
    parser.error('--stability must be between 0 and 1')
  if args.video and (args.style or args.topk or args.side_by_side or args.hints):
    parser.error('--style, --topk, --side-by-side and --hints apply to images only')
  if args.style and args.hints:
    parser.error('--style and --hints cannot be combined: the style image sets the global '
                 'colours that hints would change')
  return args


def colorize_video(args):
  """--video: one video in, one colorized video out."""
  target = video_io.plan_output(args.video, args.output, batch.DEFAULT_OUTPUT)
  try:
    checkpoint_dir = checkpoint.model_or_bundled(args.checkpoint)
  except checkpoint.CheckpointError as e:
    options.error(e)
    return 2
  try:
    video_io.import_av()
    video_io.check_paths(pathlib.Path(args.video), target, args.overwrite)  # before loading
    predictor = inference.Predictor.for_command(checkpoint_dir)
    summary = video_io.colorize_file(video.VideoColorizer(predictor), args.video, target,
                                     args.stability, args.strength, args.overwrite,
                                     args.max_pixels)
  except (checkpoint.CheckpointError, video_io.VideoError) as e:
    options.error(e)
    return 1
  print(f'{args.video} -> {target} ({summary["frames"]} frames, {summary["shots"]} shots, '
        f'{summary["frames_per_second"]:.1f} frames/s)')
  return 0


def main(argv=None):
  args = parse_args(argv)
  jaxcolor.enable_fast_cpu_convolutions()
  logging.set_verbosity(logging.ERROR)  # orbax's informational chatter
  if args.video:
    return colorize_video(args)
  inputs, problems = batch.collect_inputs(args.image, skip=args.output or batch.DEFAULT_OUTPUT)
  for problem in problems:
    options.error(problem)
  try:
    plan = batch.plan_outputs(inputs, args.output)
    hint_files, warnings = batch.plan_hints(inputs, args.hints) if args.hints else (None, [])
  except ValueError as e:
    options.error(e)
    return 2
  for warning in warnings:
    print(warning, file=sys.stderr)
  try:
    predictor = options.load_predictor(args, 'infer.py --image photo.jpg',
                                       tile=args.tile or None)
    style_l = images.load_luminance(args.style, args.max_pixels).l if args.style else None
    if args.hints and not predictor.has_hints:
      raise ValueError(f'--hints: the model {predictor.path} takes no colour hints (it was '
                       'trained without model.hints)')
  except (checkpoint.CheckpointError, images.ImageError, ValueError) as e:
    options.error(e)
    return 2
  failures = batch.colorize_files(predictor, plan, style_l, args.topk, args.side_by_side,
                                  args.overwrite, args.max_pixels, strength=args.strength,
                                  hint_files=hint_files)
  failures += len(problems)
  if failures:
    print(f'{failures} of {len(inputs) + len(problems)} inputs failed', file=sys.stderr)
  return 1 if failures else 0
