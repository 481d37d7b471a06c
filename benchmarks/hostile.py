"""Real image files and the ways an upload damages them, for tests/test_fuzz.py and
benchmarks/soak.py.

The damage is what broken downloads, bad disks and forged files do: a truncated
end, flipped bits, bytes inserted, deleted or overwritten, and a header whose
declared width and height are rewritten (also to sizes like 60000x60000 that the
rest of the file cannot hold). `declare_size` knows where PNG, JPEG, GIF, BMP,
TIFF and WebP keep them.
"""
import io
import struct
import zlib

# Pillow's name of a format -> a file name extension for it.
EXTENSIONS = {'PNG': '.png', 'JPEG': '.jpg', 'WEBP': '.webp', 'BMP': '.bmp', 'GIF': '.gif',
              'TIFF': '.tif'}
# JPEG markers that start a frame (SOFn) and so hold its height and width.
_JPEG_FRAMES = set(range(0xc0, 0xd0)) - {0xc4, 0xc8, 0xcc}


def encode(image, file_format, **options):
  """The bytes of `image` saved in `file_format`."""
  data = io.BytesIO()
  image.save(data, format=file_format, **options)
  return data.getvalue()


# Positions are taken modulo the file's length, so that any number names a place in it.


def truncate(data, position):
  """`data` cut at `position`: always shorter (empty stays empty)."""
  return data[:position % len(data)] if data else data


def flip(data, position, mask):
  """`data` with the byte at `position` XORed with `mask` (1-255)."""
  position %= max(len(data), 1)
  return data[:position] + bytes([data[position] ^ mask]) + data[position + 1:] if data else data


def insert(data, position, junk):
  position %= len(data) + 1
  return data[:position] + junk + data[position:]


def delete(data, position, count):
  position %= max(len(data), 1)
  return data[:position] + data[position + count:]


def overwrite(data, position, junk):
  position %= max(len(data), 1)
  return data[:position] + junk + data[position + len(junk):]


def declare_size(data, width, height):
  """`data` with the width and height its header declares set to these (the
  pixel data left as it is), or unchanged when its format is not one this knows
  or its header is too damaged to find them. Checksums that readers verify (PNG's
  CRC) are recomputed, so the new size is what they read."""
  for magic, edit in ((b'\x89PNG\r\n\x1a\n', _png), (b'\xff\xd8', _jpeg), (b'GIF8', _gif),
                      (b'BM', _bmp), (b'II*\x00', _tiff), (b'MM\x00*', _tiff), (b'RIFF', _webp)):
    if data.startswith(magic):
      try:
        return edit(bytearray(data), width, height)
      except (IndexError, struct.error):  # a header cut short: nothing to rewrite
        return data
  return data


def _png(data, width, height):
  if data[12:16] != b'IHDR':
    return bytes(data)
  data[16:24] = struct.pack('>II', width % 2**32, height % 2**32)
  data[29:33] = struct.pack('>I', zlib.crc32(bytes(data[12:29])) & 0xffffffff)
  return bytes(data)


def _jpeg(data, width, height):
  """Walks the segments up to the first frame header (SOFn) and sets its size."""
  position = 2
  while position + 4 <= len(data) and data[position] == 0xff:
    marker = data[position + 1]
    if marker == 0xff:  # fill byte
      position += 1
      continue
    (length,) = struct.unpack_from('>H', data, position + 2)
    if marker in _JPEG_FRAMES:
      struct.pack_into('>HH', data, position + 5, height % 2**16, width % 2**16)
      break
    if marker == 0xda:  # start of scan: no frame header before the data
      break
    position += 2 + length
  return bytes(data)


def _gif(data, width, height):
  """Sets the logical screen's size and the first image's."""
  size = struct.pack('<HH', width % 2**16, height % 2**16)
  data[6:10] = size
  position = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
  while position < len(data):
    if data[position] == 0x21:  # an extension: label, then sub-blocks up to an empty one
      position += 2
      while position < len(data) and data[position]:
        position += data[position] + 1
      position += 1
    elif data[position] == 0x2c:  # the image descriptor: left, top, width, height
      data[position + 5:position + 9] = size
      break
    else:
      break
  return bytes(data)


def _bmp(data, width, height):
  if struct.unpack_from('<I', data, 14)[0] == 12:  # the old OS/2 header: 16-bit sizes
    struct.pack_into('<HH', data, 18, width % 2**16, height % 2**16)
  else:  # a negative height is a top-down bitmap, so sizes are signed
    struct.pack_into('<ii', data, 18, _signed(width), _signed(height))
  return bytes(data)


def _signed(value):
  return (value + 2**31) % 2**32 - 2**31


def _tiff(data, width, height):
  """Sets the first IFD's ImageWidth (256) and ImageLength (257) tags, as LONGs."""
  order = '<' if data[:2] == b'II' else '>'
  (ifd,) = struct.unpack_from(order + 'I', data, 4)
  (count,) = struct.unpack_from(order + 'H', data, ifd)
  for i in range(count):
    entry = ifd + 2 + 12 * i
    tag, kind, _ = struct.unpack_from(order + 'HHI', data, entry)
    if tag in (256, 257):
      value = (width if tag == 256 else height) % 2**32
      struct.pack_into(order + 'HHII', data, entry, tag, 4, 1, value)
  return bytes(data)


def _webp(data, width, height):
  """Sets the canvas size of a VP8X chunk, and the frame size of the VP8 or VP8L
  bitstream (within their 14 bits)."""
  position = 12
  while position + 8 <= len(data):
    kind = bytes(data[position:position + 4])
    (length,) = struct.unpack_from('<I', data, position + 4)
    body = position + 8
    if kind == b'VP8X':
      data[body + 4:body + 10] = ((width - 1) % 2**24).to_bytes(3, 'little') + (
          (height - 1) % 2**24).to_bytes(3, 'little')
    elif kind == b'VP8 ':
      struct.pack_into('<HH', data, body + 6, width % 2**14, height % 2**14)
      break
    elif kind == b'VP8L':
      (bits,) = struct.unpack_from('<I', data, body + 1)
      bits = (bits & ~0xfffffff) | ((width - 1) % 2**14) | (((height - 1) % 2**14) << 14)
      struct.pack_into('<I', data, body + 1, bits)
      break
    position = body + length + (length & 1)
  return bytes(data)
