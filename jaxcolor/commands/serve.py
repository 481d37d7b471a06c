"""A local web page that colorizes photos: drop them in, compare, adjust, download.

  python serve.py                       # then open http://127.0.0.1:8000/
  python serve.py --port 8080 --checkpoint runs/mine/checkpoints

Needs `pip install -r requirements-web.txt`. It listens on this computer only
(127.0.0.1) unless --host says otherwise; there it answers only requests
addressed to localhost, 127.0.0.1 or [::1], so that web pages elsewhere cannot
use it. The page works offline. The same model and code as infer.py: the page's
HTTP API is in the README.
"""
import argparse
import signal
import socket
import sys

import jaxcolor
from jaxcolor import buckets
from jaxcolor import checkpoint
from jaxcolor.apps.web import model_process
from jaxcolor.commands import options

LOOPBACK = ('127.0.0.1', 'localhost', '::1')
LOOPBACK_HOSTS = ('127.0.0.1', 'localhost', '[::1]')  # as a Host header names them
# A request takes some 150 bytes a pixel at its peak (float64 RGB and L*a*b*
# copies, the network's activations; peak RSS with the bundled model: 3.9 GB at
# 5000x5000, 10 GB at 8192x8192, which a flat PNG of 84 KB can claim).
MAX_PIXELS = 5000 * 5000
STOP_SECONDS = 5  # Ctrl+C waits this long for requests under way, then drops them
# The usual photo shapes up to this side are compiled when the server starts (about
# 90 programs: a few minutes on 2 cores, seconds once XLA's disk cache has them).
WARM_UP_SIDE = 2048
MIN_PROGRAMS = 32  # --max-programs's default without a warm-up


def parse_args(argv):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--host', default='127.0.0.1',
                      help='address to listen on; 0.0.0.0 opens the page to your whole '
                           'network (default: %(default)s, this computer only)')
  parser.add_argument('--port', type=int, default=8000,
                      help='port to listen on; 0 picks a free one (default: %(default)s)')
  options.add_checkpoint(parser)
  parser.add_argument('--max-upload-mb', type=float, default=64,
                      help='refuse larger uploads (default: %(default)s)')
  parser.add_argument('--max-pixels', type=int, default=MAX_PIXELS,
                      help='refuse larger images, from their header (default: %(default)s, '
                           '5000x5000: colorizing takes some 150 bytes a pixel, so about '
                           '4 GB of memory at this size)')
  parser.add_argument('--max-queue', type=int, default=16,
                      help='most photo requests under way at once (uploading, waiting for '
                           'the model or colorized); more are refused with 503 (default: '
                           '%(default)s; each holds its upload in memory)')
  parser.add_argument('--upload-timeout', type=float, default=30, metavar='SECONDS',
                      help='refuse an upload with 408 once it has sent nothing for this long, '
                           'freeing its place (default: %(default)s)')
  parser.add_argument('--warm-up', type=int, default=WARM_UP_SIDE, metavar='PIXELS',
                      help='compile the programs for photo sizes up to this side when the '
                           'server starts, in the background (the usual shapes: '
                           'buckets.common); 0 compiles each on its first photo (default: '
                           '%(default)s)')
  parser.add_argument('--max-programs', type=int, default=None,
                      help='most compiled programs kept, one per size bucket, the least '
                           'recently used dropped first (a few MB each; default: as many as '
                           f'the warm-up compiles, at least {MIN_PROGRAMS}: {default_programs(WARM_UP_SIDE)} '
                           f'at --warm-up {WARM_UP_SIDE}, so memory stops growing once it ends)')
  parser.add_argument('--recycle-after', type=int,
                      default=model_process.DEFAULT_RECYCLE_AFTER, metavar='PROGRAMS',
                      help='replace the model\'s process once it has dropped this many programs '
                           'for new sizes (XLA keeps up to a MB of each compile; the new process '
                           'loads in seconds and warms up from the disk cache; default: '
                           '%(default)s)')
  args = parser.parse_args(argv)
  if args.max_programs is None:
    args.max_programs = default_programs(args.warm_up)
  if not 0 <= args.port <= 65535:
    parser.error('--port must be from 0 to 65535')
  if min(args.max_upload_mb, args.max_pixels, args.max_queue, args.max_programs,
         args.recycle_after) <= 0:
    parser.error('--max-upload-mb, --max-pixels, --max-queue, --max-programs and '
                 '--recycle-after must be positive')
  if args.warm_up < 0:
    parser.error('--warm-up must be 0 or more')
  if not 0 < args.upload_timeout < float('inf'):  # also NaN
    parser.error('--upload-timeout must be a positive number of seconds')
  return args


def default_programs(warm_up_side):
  """The programs kept by default: the warm-up's, so that what the server holds once
  warmed up is what it holds from then on (later sizes replace the least used)."""
  return max(MIN_PROGRAMS, len(buckets.common(warm_up_side)) if warm_up_side else 0)


def bind(host, port):
  """A socket bound to host:port (port 0: a free one), or SystemExit saying why not."""
  sock = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET)
  sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
  try:
    sock.bind((host, port))
  except OSError as e:
    print(f'error: cannot listen on {host} port {port} ({e.strerror or e}): choose another '
          '--port (0 picks a free one) or --host', file=sys.stderr)
    raise SystemExit(2) from None
  return sock


def main(argv=None):
  args = parse_args(argv)
  try:
    import uvicorn  # pylint: disable=g-import-not-at-top (optional: the web page only)
    from jaxcolor.apps.web import app as web_app  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    options.error(f"the web page needs {e.name}: pip install 'jaxcolor[web]' (in a clone: "
                  'pip install -r requirements-web.txt)')
    return 2
  sock = bind(args.host, args.port)  # before the model loads: a taken port fails at once
  jaxcolor.enable_fast_cpu_convolutions()  # in the environment the model's process inherits
  try:  # the model runs in a process of its own (jaxcolor/apps/web/model_process.py)
    path = checkpoint.model_or_bundled(args.checkpoint, 'serve.py')
    predictor = model_process.ModelProcess(
        path, capacity=args.max_programs, recycle_after=args.recycle_after,
        warm_up=buckets.common(args.warm_up) if args.warm_up else ())
  except checkpoint.CheckpointError as e:
    options.error(e)
    return 2
  loopback = args.host in LOOPBACK
  app = web_app.create_app(predictor, int(args.max_upload_mb * 2**20), args.max_pixels,
                           args.max_queue, LOOPBACK_HOSTS if loopback else ('*',),
                           upload_timeout=args.upload_timeout)
  config = uvicorn.Config(app, log_level='warning', timeout_graceful_shutdown=STOP_SECONDS)
  sock.listen(config.backlog)
  host, port = sock.getsockname()[:2]
  url = f'http://{f"[{host}]" if ":" in host else host}:{port}/'
  if not loopback:
    print(f'warning: listening on {args.host}: anyone who can reach this computer can use '
          'the page', file=sys.stderr)
  print(f'jaxcolor: colorizing at {url}  (Ctrl+C stops)', flush=True)
  server = uvicorn.Server(config)
  try:
    server.run(sockets=[sock])
  except KeyboardInterrupt:  # Ctrl+C, passed on by uvicorn once it has stopped
    return 130
  # uvicorn passes Ctrl+C on by raising it again inside asyncio.run, whose main task can
  # finish first and return normally (seen under load): ask it what stopped it.
  return 130 if signal.SIGINT in getattr(server, '_captured_signals', ()) else 0
