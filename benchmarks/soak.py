"""The web server under load: many clients, sizes and formats, hostile files and
stalled uploads, in one run: a table, DIR/soak.json and DIR/soak.png.

  python -m benchmarks.soak                   # 300 requests from 4 clients, the bundled model
  python -m benchmarks.soak --requests 1000 --out runs/soak-long --server-arg=--max-queue=32
  python -m benchmarks.soak --checkpoint runs/mine/checkpoints --max-side 1024 --stalled 0

Starts serve.py (a free port, its address read from its output; each --server-arg
is passed on to it, written --server-arg=--option=value), then --clients threads
send --requests POST /api/colorize in all. Photos are smooth gradients, soft
shapes and grain, grey or colour, of a seeded random size from --min-side to
--max-side per side (log-uniform, so every size band gets some), in a random
format (JPEG, PNG, WebP, BMP, GIF, TIFF). --hostile-fraction of the files, at
random places, are damaged: truncated, bytes flipped, the header's size
rewritten, a declared 60000x60000, junk (these in turn). --stalled uploads,
spread over the run, send half of a photo and then nothing: each waits for an
answer (a server with an upload timeout says 408) until the other requests are
done, then closes.

Recorded: every answer's status, latency, size, format and kind; requests
without an answer (a connection error or the client's --timeout) are lost. The
server's RSS (VmRSS in /proc of serve.py and the model's process it starts,
summed; every --rss-interval s): at start, after the first
answer, its maximum, after the run (idle), and its growth over the second half of
the run: the peak of the run's last quarter over that of its second quarter.
serve.py expects a photo to need some 150 bytes a pixel at its peak; the table
shows that for the largest photo sent. Latencies include the wait behind other
clients' photos (the server colorizes one at a time), as a user would see them.
"""
import argparse
import collections
import dataclasses
import http.client
import io
import json
import math
import os
import pathlib
import re
import socket
import subprocess
import sys
import threading
import time
import uuid

import numpy as np
from PIL import Image, ImageDraw

from benchmarks import hostile

ROOT = pathlib.Path(__file__).resolve().parent.parent
FORMATS = ('JPEG', 'PNG', 'WEBP', 'BMP', 'GIF', 'TIFF')
DAMAGE = ('truncated', 'flipped', 'bad header', 'huge header', 'junk')
BANDS = ((512, '<=512'), (1024, '513-1024'), (2048, '1025-2048'), (math.inf, '>2048'))
BYTES_PER_PIXEL = 150  # serve.py's estimate of a request's peak memory


def _with_descendants(pid):
  """pid and the ids of all its descendants (/proc/PID/task/*/children)."""
  found, queue = [], [pid]
  while queue:
    pid = queue.pop()
    found.append(pid)
    for task in pathlib.Path(f'/proc/{pid}/task').glob('*/children'):
      try:
        queue.extend(int(child) for child in task.read_text().split())
      except OSError:  # the task ended meanwhile
        pass
  return found


def _rss_kb(pid):
  """A process's VmRSS in kB; 0 for one that has just ended."""
  try:
    status = pathlib.Path(f'/proc/{pid}/status').read_text()
  except OSError:
    return 0
  found = re.search(r'VmRSS:\s+(\d+) kB', status)
  return int(found.group(1)) if found else 0


@dataclasses.dataclass
class Request:
  index: int
  kind: str             # 'photo' or 'hostile'
  file_format: str
  width: int            # the photo's size (a hostile file's before its damage)
  height: int
  damage: str | None = None
  bytes: int = 0
  status: int | None = None  # None: lost (no answer)
  latency_s: float | None = None
  error: str | None = None   # why it was lost, the server's error, or what was wrong with a 200
  started_s: float | None = None  # since the run's start


def photo_like(rng, width, height, grey):
  """A width x height image with a photo's statistics: a smooth random field
  (drawn at 64 x 64 and scaled up), a few hard-edged shapes and grain."""
  channels = 1 if grey else 3
  y, x = np.mgrid[0:1:64j, 0:1:64j]
  field = np.zeros((64, 64, channels))
  for c in range(channels):
    a, b, f, phase = rng.uniform(-1, 1, 4)
    field[..., c] = 0.5 + 0.25 * (a * x + b * y) + 0.12 * np.sin(6 * f * x + 4 * y + 3 * phase)
    for cy, cx, radius, weight in rng.uniform(0, 1, (4, 4)):  # soft blobs
      distance2 = (x - cx) ** 2 + (y - cy) ** 2
      field[..., c] += 0.25 * (weight - 0.5) * np.exp(-distance2 / (0.01 + 0.1 * radius))
  small = np.clip(field * 255, 0, 255).astype(np.uint8)
  image = Image.fromarray(small[..., 0] if grey else small).resize((width, height),
                                                                  Image.Resampling.BICUBIC)
  draw = ImageDraw.Draw(image)
  for _ in range(3):
    x0, x1 = sorted(rng.uniform(0, width, 2))
    y0, y1 = sorted(rng.uniform(0, height, 2))
    fill = int(rng.integers(256)) if grey else tuple(int(v) for v in rng.integers(256, size=3))
    (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=fill)
  pixels = np.asarray(image, np.int16)
  pixels = pixels + rng.integers(-6, 7, pixels.shape[:2] + pixels.shape[2:3], dtype=np.int16)
  return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def encode_photo(image, file_format, rng):
  if file_format == 'GIF':
    return hostile.encode(image if image.mode == 'L' else image.quantize(256), 'GIF')
  options = {'quality': int(rng.integers(70, 96))} if file_format in ('JPEG', 'WEBP') else {}
  return hostile.encode(image, file_format, **options)


def plan(args):
  """The run's requests, drawn from --seed alone (what each client sends does not
  depend on which client sends it)."""
  rng = np.random.default_rng(args.seed)
  sides = np.exp(rng.uniform(math.log(args.min_side), math.log(args.max_side + 1),
                             (args.requests, 2))).astype(int)
  formats = rng.integers(len(FORMATS), size=args.requests)
  # round(fraction x requests) hostile files at random places, the kinds of damage in turn.
  hostile_at = rng.permutation(args.requests)[:round(args.hostile_fraction * args.requests)]
  damage = {int(i): DAMAGE[j % len(DAMAGE)] for j, i in enumerate(sorted(hostile_at))}
  return [Request(i, 'hostile' if i in damage else 'photo', FORMATS[formats[i]], int(width),
                  int(height), damage.get(i)) for i, (width, height) in enumerate(sides)]


def content(request, seed):
  """(file name, bytes) of a planned request, made from its own seed."""
  rng = np.random.default_rng([seed, 0, request.index])
  name = f'soak-{request.index}{hostile.EXTENSIONS[request.file_format]}'
  if request.damage == 'junk':
    return name, rng.bytes(int(rng.integers(0, 100_000)))
  image = photo_like(rng, request.width, request.height, grey=rng.random() < 0.4)
  data = encode_photo(image, request.file_format, rng)
  if request.damage == 'truncated':
    data = hostile.truncate(data, int(len(data) * rng.uniform(0.05, 0.95)))
  elif request.damage == 'flipped':
    for _ in range(int(rng.integers(1, 17))):
      data = hostile.flip(data, int(rng.integers(len(data))), int(rng.integers(1, 256)))
  elif request.damage == 'bad header':
    data = hostile.declare_size(data, *(int(v) for v in rng.integers(1, 4 * request.width, 2)))
  elif request.damage == 'huge header':
    data = hostile.declare_size(data, 60000, 60000)
  return name, data


def multipart(name, data):
  """(body, Content-Type) of a multipart/form-data upload of one file as `image`."""
  boundary = uuid.uuid4().hex
  body = (f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"'
          '\r\nContent-Type: application/octet-stream\r\n\r\n').encode() + data + (
              f'\r\n--{boundary}--\r\n'.encode())
  return body, f'multipart/form-data; boundary={boundary}'


class Server:
  """serve.py in its own process, its output in `folder`."""

  def __init__(self, folder, checkpoint, server_args, repo=ROOT):
    self.stdout, self.stderr = folder / 'server-stdout.txt', folder / 'server-stderr.txt'
    command = [sys.executable, str(pathlib.Path(repo) / 'serve.py'), '--port', '0',
               *(['--checkpoint', str(checkpoint)] if checkpoint else []), *server_args]
    with open(self.stdout, 'w') as out, open(self.stderr, 'w') as err:
      self.process = subprocess.Popen(command, stdout=out, stderr=err, cwd=folder,
                                      env={**os.environ, 'PYTHONPATH': str(repo)})
    deadline = time.monotonic() + 600
    while not (found := re.search(r'http://(\S+):(\d+)/', self.stdout.read_text())):
      if self.process.poll() is not None or time.monotonic() > deadline:
        self.stop()
        raise SystemExit(f'error: serve.py did not start: {self.stderr.read_text()[-2000:]}')
      time.sleep(0.1)
    self.host, self.port = found.group(1).strip('[]'), int(found.group(2))

  def rss_mb(self):
    """The resident memory (VmRSS) of the server and the processes it started (the
    model's), or None without /proc."""
    if not pathlib.Path(f'/proc/{self.process.pid}/status').exists():
      return None
    return sum(_rss_kb(pid) for pid in _with_descendants(self.process.pid)) / 1024

  def info(self):
    """The server's /api/info."""
    connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
    try:
      connection.request('GET', '/api/info')
      return json.loads(connection.getresponse().read())
    finally:
      connection.close()

  def warmed_up(self, timeout=3600):
    """Waits for the server's warm-up compiles to end (at once for a server without
    one); returns the seconds waited."""
    start = time.perf_counter()
    while self.info().get('programs', {}).get('warming_up'):
      if time.perf_counter() - start > timeout:
        raise SystemExit('error: the server was still warming up after {timeout} s')
      time.sleep(1)
    return time.perf_counter() - start

  def stop(self):
    self.process.terminate()
    try:
      self.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
      self.process.kill()
      self.process.wait()


def send(server, request, seed, timeout, start):
  """Sends one planned request and records its answer in it."""
  name, data = content(request, seed)
  body, content_type = multipart(name, data)
  request.bytes = len(data)
  connection = http.client.HTTPConnection(server.host, server.port, timeout=timeout)
  began = time.perf_counter()
  request.started_s = began - start
  try:
    connection.request('POST', '/api/colorize', body, {'Content-Type': content_type})
    response = connection.getresponse()
    answer = response.read()
    request.status = response.status
  except (OSError, http.client.HTTPException) as e:
    request.error = f'{type(e).__name__}: {e}'
    return
  finally:
    request.latency_s = time.perf_counter() - began
    connection.close()
  if request.status == 200 and request.kind == 'photo':
    try:
      with Image.open(io.BytesIO(answer)) as result:
        if result.size != (request.width, request.height):
          request.error = f'the result is {result.size}, not {request.width}x{request.height}'
    except Exception as e:  # the answer is not an image
      request.error = f'the result is not an image ({e})'
  elif request.status != 200:
    request.error = answer[:200].decode(errors='replace')


def stalled_upload(server, seed, index, done, record):
  """Sends headers and about half of a 1000 x 800 PNG's upload, then nothing; waits
  for an answer until `done` is set, then closes. Records what happened."""
  rng = np.random.default_rng([seed, 1, index])
  body, content_type = multipart(f'stalled-{index}.png', hostile.encode(
      photo_like(rng, 1000, 800, grey=False), 'PNG'))
  sent = len(body) // 2
  began = time.perf_counter()
  record.update(declared_bytes=len(body), sent_bytes=sent, status=None, answered_after_s=None)
  try:
    with socket.create_connection((server.host, server.port), timeout=10) as stalled:
      stalled.sendall(f'POST /api/colorize HTTP/1.1\r\nHost: {server.host}\r\nContent-Type: '
                      f'{content_type}\r\nContent-Length: {len(body)}\r\n\r\n'.encode()
                      + body[:sent])
      stalled.settimeout(0.5)
      answer = b''
      while not done.is_set():
        try:
          chunk = stalled.recv(4096)
        except TimeoutError:
          continue
        answer += chunk
        if not chunk or b'\r\n' in answer:
          break
      if answer:
        record['status'] = int(answer.split()[1])
        record['answered_after_s'] = time.perf_counter() - began
      elif not done.is_set():
        record['error'] = 'closed by the server without an answer'
  except (OSError, ValueError, IndexError) as e:
    record['error'] = f'{type(e).__name__}: {e}'


def percentile(values, q):
  return float(np.percentile(values, q)) if values else None


def band(request):
  side = max(request.width, request.height)
  return next(name for limit, name in BANDS if side <= limit)


def summarize(requests, stalls, rss, rss_at, seconds, args, server_log):
  """The run's summary (soak.json without its samples). `rss`: (seconds, MB)
  samples; `rss_at`: MB at 'start', 'after_first_answer' and 'after_run_idle'."""
  statuses = collections.Counter(str(r.status) if r.status else 'lost' for r in requests)
  photos = [r for r in requests if r.kind == 'photo']
  latency = {}
  for _, name in BANDS:
    times = [r.latency_s for r in photos if r.status == 200 and band(r) == name]
    latency[name] = {'n': len(times), 'p50_s': percentile(times, 50),
                     'p95_s': percentile(times, 95)}
  refused = [r.latency_s for r in requests if r.status in (400, 413)]
  latency['refused (400/413)'] = {'n': len(refused), 'p50_s': percentile(refused, 50),
                                  'p95_s': percentile(refused, 95)}
  largest = max(photos, key=lambda r: r.width * r.height, default=None)

  def peak(first, last):  # the highest sample between these fractions of the run
    values = [mb for t, mb in rss if first * seconds <= t <= last * seconds]
    return max(values) if values else None

  def resting(first, last):  # the median sample: where RSS sits between large photos
    values = [mb for t, mb in rss if first * seconds <= t <= last * seconds]
    return percentile(values, 50) if values else None

  second_quarter, last_quarter = peak(0.25, 0.5), peak(0.75, 1.0)
  resting_second, resting_last = resting(0.25, 0.5), resting(0.75, 1.0)
  return {
      'date': time.strftime('%Y-%m-%d'), 'args': vars(args),
      'requests': len(requests), 'photos': len(photos),
      'hostile': len(requests) - len(photos),
      'statuses': dict(sorted(statuses.items())),
      'server_errors_5xx': [dataclasses.asdict(r) for r in requests
                            if r.status and r.status >= 500],
      'lost': [dataclasses.asdict(r) for r in requests if r.status is None],
      # Answered, neither 5xx nor as it should be: a photo not colorized at its size,
      # a hostile file answered other than 200, 400 or 413.
      'unexpected': [dataclasses.asdict(r) for r in requests if r.status and r.status < 500 and (
          r.kind == 'photo' and (r.status != 200 or r.error) or r.status not in (200, 400, 413))],
      'latency_by_band': latency,
      'stalled': stalls,
      'server_alive_at_end': server_log['alive'], 'server_tracebacks': server_log['tracebacks'],
      'warm_up_s': server_log.get('warm_up_s'),
      'programs': {'after_warm_up': server_log.get('programs_after_warm_up'),
                   'at_end': server_log.get('programs_at_end')},
      'rss_mb': {**rss_at, 'max': max((mb for _, mb in rss), default=None),
                 'second_quarter_peak': second_quarter, 'last_quarter_peak': last_quarter,
                 'growth_second_half_pct': (100 * (last_quarter / second_quarter - 1)
                                            if second_quarter and last_quarter else None),
                 # The peaks are whichever large photos fell in each quarter; the
                 # medians show the level RSS returns to, which a leak raises.
                 'second_quarter_median': resting_second, 'last_quarter_median': resting_last,
                 'resting_growth_second_half_pct': (100 * (resting_last / resting_second - 1)
                                                    if resting_second and resting_last else None)},
      'largest_photo': largest and {
          'width': largest.width, 'height': largest.height,
          'pixels': largest.width * largest.height,
          'expected_peak_mb': BYTES_PER_PIXEL * largest.width * largest.height / 2**20},
      # The bound: the RSS after warm-up plus 150 bytes a pixel of the largest photo.
      'rss_bound_mb': largest and rss_at['after_warm_up'] and (
          rss_at['after_warm_up'] + BYTES_PER_PIXEL * largest.width * largest.height / 2**20),
      'seconds': seconds,
  }


def plot(path, rss, requests):
  import matplotlib  # pylint: disable=g-import-not-at-top (only here)
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
  if rss:
    left.plot([t for t, _ in rss], [mb for _, mb in rss])
  left.set(xlabel='seconds since the start', ylabel='server RSS (MB)', title='memory')
  names = [name for _, name in BANDS]
  times = [[r.latency_s for r in requests if r.kind == 'photo' and r.status == 200
            and band(r) == name] for name in names]
  right.boxplot([t or [math.nan] for t in times], tick_labels=names)
  right.set(xlabel='photo\'s longer side (px)', ylabel='latency (s)',
            title='latency of colorized photos, by size')
  figure.tight_layout()
  figure.savefig(path, dpi=100)
  plt.close(figure)


def table(summary):
  lines = ['status  count'] + [f'{status:>6}  {n:5d}' for status, n in summary['statuses'].items()]
  lines += ['', f'{"latency (s)":<18} {"n":>4} {"p50":>7} {"p95":>7}']
  for name, row in summary['latency_by_band'].items():
    lines.append(f'{name:<18} {row["n"]:4d} ' + ' '.join(
        f'{v:7.2f}' if v is not None else f'{"-":>7}' for v in (row['p50_s'], row['p95_s'])))
  rss = summary['rss_mb']

  def mb(v):
    return '-' if v is None else f'{v:.0f} MB'

  growth = rss['growth_second_half_pct']
  lines += ['', f'server RSS: start {mb(rss["start"])}, after warm-up ({summary["warm_up_s"]:.0f} '
            f's) {mb(rss["after_warm_up"])}, after the first answer '
            f'{mb(rss["after_first_answer"])}, max {mb(rss["max"])}, after the run '
            f'{mb(rss["after_run_idle"])}; growth over the second half '
            + ('-' if growth is None else f'{growth:+.1f}%') + ' (peaks), '
            + ('-' if rss.get('resting_growth_second_half_pct') is None
               else f'{rss["resting_growth_second_half_pct"]:+.1f}%') + ' (medians)']
  if summary['rss_bound_mb']:
    lines.append(f'bound (after warm-up + {BYTES_PER_PIXEL} B x the largest photo): '
                 f'{mb(summary["rss_bound_mb"])}; max is '
                 + ('under it' if rss['max'] <= summary['rss_bound_mb'] else 'OVER IT'))
  programs = summary['programs']['at_end']
  if programs:
    lines.append(f'compiled programs at the end: {programs["kept"]} kept (at most '
                 f'{programs["capacity"]}), {programs["compiled"]} compiled, '
                 f'{programs["evicted"]} evicted')
  if largest := summary['largest_photo']:
    lines.append(f'largest photo: {largest["width"]}x{largest["height"]} = '
                 f'{largest["pixels"]:,} px; x {BYTES_PER_PIXEL} B = '
                 f'{largest["expected_peak_mb"]:.0f} MB')
  stalled = summary['stalled']
  answered = collections.Counter(s['status'] for s in stalled if s.get('status'))
  lines.append(f'stalled uploads: {len(stalled)}; answered: '
               + (', '.join(f'{n} x {s}' for s, n in sorted(answered.items())) or 'none')
               + (' (408: the server timed them out)' if 408 in answered else ''))
  lines.append(f'lost answers: {len(summary["lost"])}; 5xx: '
               f'{len(summary["server_errors_5xx"])}; other unexpected: '
               f'{len(summary["unexpected"])}; server tracebacks: '
               f'{summary["server_tracebacks"]}'
               + ('' if summary['server_alive_at_end'] else '; THE SERVER DIED')
               + f'; {summary["seconds"]:.0f} s')
  return '\n'.join(lines)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--requests', type=int, default=300)
  parser.add_argument('--clients', type=int, default=4)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--out', default='runs/soak', help='folder for soak.json, soak.png '
                      'and the server\'s output (default: %(default)s)')
  parser.add_argument('--checkpoint', help='the model serve.py runs (default: the bundled one)')
  parser.add_argument('--min-side', type=int, default=64)
  parser.add_argument('--max-side', type=int, default=3000)
  parser.add_argument('--hostile-fraction', type=float, default=0.1)
  parser.add_argument('--stalled', type=int, default=3, help='stalled uploads, spread over the run')
  parser.add_argument('--timeout', type=float, default=900,
                      help='seconds a client waits for an answer before it counts as lost')
  parser.add_argument('--rss-interval', type=float, default=1.0)
  parser.add_argument('--server-arg', action='append', default=[],
                      help='an option for serve.py, e.g. --server-arg=--max-queue=32 (repeatable)')
  parser.add_argument('--repo', default=str(ROOT),
                      help='the clone whose serve.py runs, e.g. a worktree of an earlier '
                           'commit for a before/after comparison (default: this one)')
  args = parser.parse_args(argv)
  if not (0 < args.min_side <= args.max_side and 0 <= args.stalled < args.requests
          and args.clients >= 1 and 0 <= args.hostile_fraction <= 1):
    parser.error('need 0 < --min-side <= --max-side, 0 <= --stalled < --requests, '
                 '--clients >= 1 and 0 <= --hostile-fraction <= 1')
  out = pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  requests = plan(args)
  server = Server(out.resolve(), args.checkpoint, args.server_arg, args.repo)
  rss_start = server.rss_mb()
  warm_up_s = server.warmed_up()
  programs_warm = server.info().get('programs')
  rss, done, stalled_done, lock = [], threading.Event(), threading.Event(), threading.Lock()
  start = time.perf_counter()
  rss_warm, first = server.rss_mb(), {}
  stalls = [{} for _ in range(args.stalled)]
  stall_at = {(k + 1) * args.requests // (args.stalled + 1): k for k in range(args.stalled)}
  threads = []  # the stalled uploads'

  def sample():
    while not done.wait(args.rss_interval):
      if (mb := server.rss_mb()) is not None:
        rss.append((time.perf_counter() - start, mb))

  pending = collections.deque(requests)

  def client():
    while True:
      with lock:
        if not pending:
          return
        request = pending.popleft()
        if request.index in stall_at:
          k = stall_at[request.index]
          stall = threading.Thread(target=stalled_upload,
                                   args=(server, args.seed, k, stalled_done, stalls[k]))
          stall.start()
          threads.append(stall)
      send(server, request, args.seed, args.timeout, start)
      with lock:
        if not first and request.status is not None:
          first['rss'] = server.rss_mb()

  sampler = threading.Thread(target=sample, daemon=True)
  sampler.start()
  try:
    clients = [threading.Thread(target=client) for _ in range(args.clients)]
    for thread in clients:
      thread.start()
    for thread in clients:
      thread.join()
    seconds = time.perf_counter() - start  # the requests' span, without the stalled ones' end
    stalled_done.set()
    for thread in threads:
      thread.join()
    time.sleep(2 * args.rss_interval)
    rss_end = server.rss_mb()
    alive = server.process.poll() is None
    programs_end = server.info().get('programs') if alive else None
    done.set()
    sampler.join()
  finally:
    done.set()
    stalled_done.set()
    server.stop()
  server_log = {'alive': alive,
                'tracebacks': server.stderr.read_text(errors='replace').count('Traceback')}
  rss_at = {'start': rss_start, 'after_warm_up': rss_warm, 'after_first_answer': first.get('rss'),
            'after_run_idle': rss_end}
  server_log.update(warm_up_s=warm_up_s, programs_after_warm_up=programs_warm,
                    programs_at_end=programs_end)
  summary = summarize(requests, stalls, rss, rss_at, seconds, args, server_log)
  (out / 'soak.json').write_text(json.dumps(
      {**summary, 'rss_samples': rss, 'all_requests': [dataclasses.asdict(r) for r in requests]},
      indent=1))
  plot(out / 'soak.png', rss, requests)
  print(table(summary))
  print(f'wrote {out / "soak.json"} and {out / "soak.png"}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
