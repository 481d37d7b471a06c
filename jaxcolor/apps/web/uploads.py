"""Receiving uploads: the limits on a request's body (size, and how long it may
stall), and reading a multipart form's photo, mood photo and text fields."""
import asyncio
import dataclasses
import pathlib

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

DEFAULT_MAX_UPLOAD_MB = 64
DEFAULT_UPLOAD_TIMEOUT = 30  # seconds an upload may send nothing before it is refused (408)
MAX_FIELD_BYTES = 256 * 1024  # a text field: a hint file of 1,000 hints is ~80 kB


@dataclasses.dataclass
class Upload:
  name: str    # the file's name as sent, without folders
  data: bytes  # its content


class UploadLimits:
  """ASGI middleware: a request body over `max_bytes` (as declared, or as it
  arrives) ends the request with 413 at the first read; nothing over it is kept.
  One that sends nothing for `timeout` seconds while the app waits for more ends
  it with 408 (idle time between its parts, however long the whole takes). Once
  the body is whole a read has no time limit: it waits for the client to leave."""

  def __init__(self, app, max_bytes, timeout=DEFAULT_UPLOAD_TIMEOUT):
    self.app, self.max_bytes, self.timeout = app, max_bytes, timeout

  async def __call__(self, scope, receive, send):
    if scope['type'] != 'http':
      return await self.app(scope, receive, send)
    declared = dict(scope['headers']).get(b'content-length', b'')
    too_large = declared.isdigit() and int(declared) > self.max_bytes
    received, whole = 0, False

    def too_much():
      return HTTPException(413, f'the upload is more than the limit of '
                                f'{self.max_bytes / 2**20:g} MB (serve.py --max-upload-mb)')

    async def limited_receive():
      nonlocal received, whole
      if too_large or received > self.max_bytes:
        raise too_much()
      if whole:
        return await receive()
      try:
        async with asyncio.timeout(self.timeout):
          message = await receive()
      except TimeoutError:
        raise HTTPException(408, f'the upload stalled for {self.timeout:g} s (serve.py '
                                 '--upload-timeout)', {'Connection': 'close'}) from None
      received += len(message.get('body', b''))
      if received > self.max_bytes:
        raise too_much()
      whole = message['type'] != 'http.request' or not message.get('more_body', False)
      return message

    return await self.app(scope, limited_receive, send)


async def read_form(request):
  """(image, style or None, the text fields) of a multipart request."""
  try:
    async with request.form(max_files=2, max_fields=10, max_part_size=MAX_FIELD_BYTES) as form:
      image = await _read_file(form, 'image', required=True)
      style = await _read_file(form, 'style')
      fields = {key: value for key, value in form.items() if isinstance(value, str)}
  except ClientDisconnect:  # nobody is left to answer; nothing was kept
    raise HTTPException(400, 'the upload stopped before its end') from None
  return image, style, fields


async def _read_file(form, field, required=False):
  value = form.get(field)
  if isinstance(value, UploadFile):
    name = pathlib.PurePath((value.filename or '').replace('\\', '/')).name
    return Upload(name or field, await value.read())
  if value or required:
    raise HTTPException(400, f'no {field}: send a file as the multipart field "{field}"')
  return None


async def client_left(receive):
  """Returns once the client has gone: `receive` of a request whose body has been read."""
  while (await receive())['type'] != 'http.disconnect':
    pass
