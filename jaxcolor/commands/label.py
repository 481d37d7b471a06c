"""Label a folder of photos with an ImageNet classifier, for training the classification branch.

  pip install -r requirements-label.txt
  python label.py --folder PHOTOS --teacher ../shared/models/mobilenet_v2_imagenet

Writes PHOTOS/teacher_labels.tsv (the top-k classes and probabilities of every photo) and
PHOTOS/teacher_labels.classes.txt; train with --config.data.labels=teacher (or teacher_soft).
Rerunning labels only the photos the file lacks. Data preparation only: colorizing
never needs the teacher.
"""
import argparse

from jaxcolor.commands import options
from jaxcolor import teacher


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--folder', required=True, help='photos, searched recursively')
  parser.add_argument('--teacher', required=True,
                      help='folder with one .tflite ImageNet classifier and imagenet_labels.txt')
  parser.add_argument('--output', help=f'labels file (default: FOLDER/{teacher.LABELS_FILE})')
  parser.add_argument('--top-k', type=int, default=5, help='classes kept per photo')
  args = parser.parse_args(argv)
  try:
    classify, names = teacher.litert_teacher(args.teacher)
  except (FileNotFoundError, ValueError) as e:
    options.error(e)
    return 2
  path = teacher.label_folder(args.folder, classify, names, output=args.output,
                              top_k=args.top_k, progress=lambda s: print(s, flush=True))
  print(f'wrote {path}')
  return 0
