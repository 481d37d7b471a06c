"""Training curves from a workdir's metrics.jsonl, as a PNG.

  python plot.py runs/places   # -> runs/places/curves.png
"""
import json
import pathlib

from matplotlib import figure as figure_lib

PANELS = (('loss', 'loss (MSE + alpha x CE)'), ('mse', 'a*b* MSE'), ('psnr', 'PSNR (dB)'))


def read_metrics(path):
  """{'train': [records], 'val': [...], 'val holdout/x': [...]} from a metrics.jsonl
  file: one curve per validation set (records before sets had names are 'val')."""
  runs = {'train': []}
  for line in pathlib.Path(path).read_text().splitlines():
    if line.strip():
      record = json.loads(line)
      name = record['split']
      if name == 'val' and record.get('set', 'val') != 'val':
        name = f'val {record["set"]}'
      runs.setdefault(name, []).append(record)
  return runs


def plot_curves(metrics_path, png_path):
  """Writes one panel per metric, training and validation curves against step."""
  runs = read_metrics(metrics_path)
  # A bare Figure draws with Agg without pyplot, so no backend is chosen for the process.
  figure = figure_lib.Figure(figsize=(5 * len(PANELS), 3.6))
  axes = figure.subplots(1, len(PANELS))
  for ax, (key, title) in zip(axes, PANELS):
    for i, (name, records) in enumerate(runs.items()):
      points = [(r['step'], r[key]) for r in records if key in r]
      if points:
        ax.plot(*zip(*points), label=name, color=f'C{i}',
                marker=None if name == 'train' else '.')
    ax.set_title(title)
    ax.set_xlabel('step')
    ax.grid(alpha=0.3)
    if ax.lines:
      ax.legend()
  figure.tight_layout()
  figure.savefig(png_path, dpi=100)
