"""How far one colour hint reaches: the a*b* error near a hint and beyond the local
path's reach, with 1 hint against 0; a table and DIR/hint_reach.json.

  python -m benchmarks.hint_reach --checkpoint runs/hints23/H/checkpoints
  python -m benchmarks.hint_reach --checkpoint CKPT --folder EXTRA_HOLDOUT --out runs/reach

For every colour photo under --folder (shrunk as evaluate.py shrinks them), one hint
is simulated from its truth exactly as `evaluate.py --hints 1` does
(evaluation.simulated_hints), and the model colorizes the photo with it and without.
The a*b* error (Euclidean distance to the truth's a*b*, per pixel) is averaged over
two regions: "near", the pixels within model.LOCAL_REACH (64 px, Chebyshev) of the
hint's patch, which the local path sees; and "far", every pixel beyond it, which
only the global path can reach. A hint that recolours a whole region lowers the far
error too; photos too small to have far pixels are left out of that column.
"""
import argparse
import json
import pathlib
import sys

import numpy as np

from jaxcolor import color
from jaxcolor import inference
from jaxcolor import model as model_lib
from jaxcolor.apps import evaluation


def regions(hint, height, width, reach=model_lib.LOCAL_REACH):
  """(near, far) boolean H x W masks around `hint`'s patch."""
  top, bottom, left, right = hint.patch(height, width)
  rows, cols = np.arange(height)[:, None], np.arange(width)[None, :]
  near = ((rows >= top - reach) & (rows < bottom + reach)
          & (cols >= left - reach) & (cols < right + reach))
  return near, ~near


def measure(predictor, photo):
  """The photo's a*b* errors near and far, with 0 and with 1 hint."""
  lab = color.rgb_to_lab(photo.rgb)
  l01 = color.normalize_l(lab[..., 0]).astype(np.float32)
  (hint,) = evaluation.simulated_hints(photo, lab, 1)
  near, far = regions(hint, *l01.shape)
  row = {'file': str(photo.path), 'size': list(l01.shape), 'far_pixels': int(far.sum())}
  for count, hints in ((0, None), (1, [hint])):
    error = np.linalg.norm(predictor(l01, hints=hints).ab - lab[..., 1:], axis=-1)
    row[f'near_{count}'] = float(error[near].mean())
    row[f'far_{count}'] = float(error[far].mean()) if far.any() else None
  return row


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--checkpoint', required=True, help='a model that takes hints')
  parser.add_argument('--folder', default=str(pathlib.Path(__file__).resolve().parents[2]
                                              / 'shared' / 'data' / 'val'))
  parser.add_argument('--out', default='runs/hint_reach')
  args = parser.parse_args(argv)
  predictor = inference.Predictor.from_checkpoint(args.checkpoint)
  if not predictor.has_hints:
    sys.exit(f'error: {args.checkpoint}: this model takes no hints')
  photos, _ = evaluation.load_colour_photos(args.folder)
  rows = [measure(predictor, photo) for photo in photos]
  far = [r for r in rows if r['far_1'] is not None]
  summary = {
      'photos': len(rows), 'photos_with_far_pixels': len(far),
      'near': {n: float(np.mean([r[f'near_{n}'] for r in rows])) for n in (0, 1)},
      'far': {n: float(np.mean([r[f'far_{n}'] for r in far])) for n in (0, 1)},
      'far_better': float(np.mean([r['far_1'] < r['far_0'] for r in far])),
  }
  print(f'{args.folder}: {len(rows)} photos, {len(far)} with pixels beyond the local path\'s '
        f'reach ({model_lib.LOCAL_REACH} px) of the hint')
  print(f'{"region":<8}{"0 hints":>10}{"1 hint":>10}{"change":>10}')
  for region in ('near', 'far'):
    zero, one = summary[region][0], summary[region][1]
    print(f'{region:<8}{zero:>10.2f}{one:>10.2f}{one - zero:>+10.2f}')
  print(f'far error lower with the hint on {summary["far_better"]:.0%} of the photos')
  out = pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  (out / 'hint_reach.json').write_text(json.dumps(
      {'checkpoint': str(args.checkpoint), 'folder': args.folder, 'summary': summary,
       'per_photo': rows}, indent=1))
  print(f'wrote {out / "hint_reach.json"}')


if __name__ == '__main__':
  main()
