"""serve.py as a user runs it (its own process, a free loopback port) and a plain HTTP client."""
import contextlib
import http.client
import json
import os
import pathlib
import re
import socket
import struct
import subprocess
import sys
import time
import urllib.parse
import uuid

import numpy as np

from jaxcolor import color

ROOT = pathlib.Path(__file__).resolve().parent.parent


class Server:
  """A running serve.py: its URL, process and the files its output goes to."""

  def __init__(self, url, process, stdout, stderr):
    self.url, self.process, self.stdout, self.stderr = url, process, stdout, stderr
    parts = urllib.parse.urlsplit(url)
    self.host, self.port = parts.hostname, parts.port

  def request(self, method, path, body=None, headers=None, timeout=300):
    """(status, headers, body) of one request on its own connection; `path` is sent as is."""
    connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
    try:
      connection.request(method, path, body, headers or {})
      response = connection.getresponse()
      return response.status, response.headers, response.read()
    finally:
      connection.close()

  def post(self, path, files=None, fields=None, headers=None):
    """A multipart POST: files {field: (file name, bytes)}, fields {name: text}."""
    body, content_type = multipart(files or {}, fields or {})
    return self.request('POST', path, body, {'Content-Type': content_type, **(headers or {})})

  def error(self, path, files=None, fields=None):
    """(status, the JSON error message) of a POST that should fail."""
    status, headers, body = self.post(path, files, fields)
    assert headers['Content-Type'] == 'application/json', (status, body[:200])
    return status, json.loads(body)['error']

  def stalled_upload(self, sent=b''):
    """A socket whose /api/colorize upload of 1.9 MB stops after `sent` bytes of it."""
    stalled = socket.create_connection((self.host, self.port))
    stalled.sendall(f'POST /api/colorize HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: '
                    'multipart/form-data; boundary=b\r\nContent-Length: 1900000\r\n\r\n'
                    '--b\r\nContent-Disposition: form-data; name="image"; filename="x.png"'
                    '\r\n\r\n'.encode() + sent)
    return stalled


def multipart(files, fields):
  """(body, Content-Type) of a multipart/form-data request, as a browser sends it."""
  boundary = uuid.uuid4().hex
  parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
           f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
           + data + b'\r\n' for name, (filename, data) in files.items()]
  parts += [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
            f'{value}\r\n'.encode() for name, value in fields.items()]
  return b''.join(parts) + f'--{boundary}--\r\n'.encode(), (
      f'multipart/form-data; boundary={boundary}')


def read_lab(body):
  """(meta, L* H x W, a*b* H x W x 2) of an /api/lab answer, as app.js reads it: H x W
  is the preview's size (meta['preview']), the photo's own below the preview's limit."""
  (length,) = struct.unpack('<I', body[:4])
  assert (4 + length) % 8 == 0
  meta = json.loads(body[4:4 + length])
  preview = meta['preview']
  planes = np.frombuffer(body[4 + length:], '<u2').reshape(3, preview['height'], preview['width'])
  l = planes[0] / 65535 * color.L_MAX
  ab = np.moveaxis(planes[1:], 0, -1) / 65535 * (2 * color.AB_MAX) - color.AB_MAX
  return meta, l, ab


@contextlib.contextmanager
def serve(folder, *args, env=None):
  """Runs `serve.py --port 0 ARGS`, its output in `folder`; yields a Server once it
  has printed its address, and stops it afterwards. Without a --warm-up in ARGS it
  compiles nothing ahead (--warm-up 0), so that tests do not compete with it."""
  if not any(str(arg).startswith('--warm-up') for arg in args):
    args = ('--warm-up', 0, *args)
  stdout, stderr = folder / 'stdout.txt', folder / 'stderr.txt'
  with open(stdout, 'w') as out, open(stderr, 'w') as err:
    process = subprocess.Popen(
        [sys.executable, str(ROOT / 'serve.py'), '--port', '0', *map(str, args)],
        stdout=out, stderr=err, cwd=folder,
        env={**os.environ, 'PYTHONPATH': str(ROOT), **(env or {})})
  try:
    deadline = time.monotonic() + 180
    while not (found := re.search(r'http://\S+/', stdout.read_text())):
      assert process.poll() is None, f'serve.py exited: {stderr.read_text()}'
      assert time.monotonic() < deadline, f'serve.py printed no address: {stderr.read_text()}'
      time.sleep(0.1)
    yield Server(found.group(0), process, stdout, stderr)
  finally:
    process.terminate()
    try:
      process.wait(timeout=60)
    except subprocess.TimeoutExpired:
      process.kill()
      process.wait()
      raise
