"""The first result for a photo size the server has never seen: a table and JSON.

  python -m benchmarks.first_result                        # the bundled model, warm-up 2048
  python -m benchmarks.first_result --server-arg=--warm-up=0   # every size compiles on arrival

Starts serve.py (each --server-arg is passed on), waits until its warm-up has
compiled what it compiles when it starts, then sends --photos JPEG photos, one
at a time, each of a size not sent before: both sides drawn (seeded) from
--side x (1 +- --spread). Times each POST /api/colorize from the start of its
upload to the end of its answer, as a user waits for it, and reports the
median. A second photo of the first one's size then shows the time without any
compile. The server's own time on the model is in each answer's Server-Timing.
"""
import argparse
import dataclasses
import http.client
import json
import pathlib
import statistics
import sys
import time

import numpy as np

from benchmarks import soak


@dataclasses.dataclass
class Answer:
  width: int
  height: int
  status: int
  seconds: float  # upload start to answer end
  model_s: float  # the server's Server-Timing for the model


def colorize(server, width, height, seed):
  """One photo of width x height, sent and answered: an Answer."""
  rng = np.random.default_rng(seed)
  image = soak.photo_like(rng, width, height, grey=True)
  body, content_type = soak.multipart(f'first-{width}x{height}.jpg',
                                      soak.encode_photo(image, 'JPEG', rng))
  connection = http.client.HTTPConnection(server.host, server.port, timeout=600)
  start = time.perf_counter()
  try:
    connection.request('POST', '/api/colorize', body, {'Content-Type': content_type})
    response = connection.getresponse()
    response.read()
    seconds = time.perf_counter() - start
    timing = response.headers.get('Server-Timing', 'model;dur=nan')
  finally:
    connection.close()
  return Answer(width, height, response.status, seconds,
                float(timing.split('dur=')[1]) / 1000)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--photos', type=int, default=5)
  parser.add_argument('--side', type=int, default=1024)
  parser.add_argument('--spread', type=float, default=0.1,
                      help='sides are drawn from side x (1 - spread) to side x (1 + spread)')
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--checkpoint', help='the model serve.py runs (default: the bundled one)')
  parser.add_argument('--out', default='runs/first-result', help='folder for the JSON and logs')
  parser.add_argument('--server-arg', action='append', default=[],
                      help='an option for serve.py, e.g. --server-arg=--warm-up=0 (repeatable)')
  args = parser.parse_args(argv)
  out = pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(args.seed)
  low, high = round(args.side * (1 - args.spread)), round(args.side * (1 + args.spread))
  sizes = []
  while len(sizes) < args.photos:  # distinct sizes: each is new to the server
    size = tuple(int(v) for v in rng.integers(low, high + 1, 2))
    if size not in sizes:
      sizes.append(size)
  server = soak.Server(out.resolve(), args.checkpoint, args.server_arg)
  try:
    warm_up_s = server.warmed_up()
    programs = server.info().get('programs')
    answers = [colorize(server, w, h, args.seed + i) for i, (w, h) in enumerate(sizes)]
    again = colorize(server, *sizes[0], args.seed)
  finally:
    server.stop()
  median = statistics.median(a.seconds for a in answers)
  print(f'{"photo":>11} {"status":>6} {"answer s":>9} {"model s":>8}')
  for a in answers + [again]:
    print(f'{a.width:5d}x{a.height:<5d} {a.status:6d} {a.seconds:9.2f} {a.model_s:8.2f}'
          + ('  (a size sent before)' if a is again else ''))
  print(f'median first result of {len(answers)} new sizes: {median:.2f} s '
        f'(warm-up took {warm_up_s:.0f} s: {programs})')
  summary = {'args': vars(args), 'warm_up_s': warm_up_s, 'programs_after_warm_up': programs,
             'answers': [dataclasses.asdict(a) for a in answers],
             'same_size_again': dataclasses.asdict(again), 'median_s': median,
             'date': time.strftime('%Y-%m-%d')}
  (out / 'first_result.json').write_text(json.dumps(summary, indent=1))
  print(json.dumps({'median_s': median, 'warm_up_s': warm_up_s}))
  return 0 if all(a.status == 200 for a in answers) else 1


if __name__ == '__main__':
  sys.exit(main())
