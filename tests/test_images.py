"""Reading awkward image files into luminance: a result or one clear error."""
import io
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image, features

from conftest import photo
from jaxcolor import color
from jaxcolor import images

GREY = photo('chelsea')[:40, :60].mean(axis=-1).astype(np.uint8)  # H x W


def expected_l(grey_uint8):
  return color.normalize_l(color.rgb_to_lab(np.repeat(grey_uint8[..., None], 3, -1) / 255.0)[..., 0])


def encode(image, file_format, **options):
  data = io.BytesIO()
  image.save(data, format=file_format, **options)
  return data.getvalue()


def write(tmp_path, name, image, **options):
  path = tmp_path / name
  image.save(path, **options)
  return path


@pytest.mark.parametrize('mode,suffix', [('L', '.png'), ('RGB', '.jpg'), ('CMYK', '.jpg'),
                                         ('RGBA', '.png'), ('LA', '.png'), ('1', '.png'),
                                         ('P', '.png'), ('L', '.tif'), ('RGB', '.bmp')])
def test_modes_and_formats(tmp_path, mode, suffix):
  image = Image.fromarray(GREY).convert(mode)
  loaded = images.load_luminance(write(tmp_path, f'photo {mode} é{suffix}', image))
  assert loaded.l.shape == GREY.shape and loaded.l.dtype == np.float32
  # The lightness of the pixels as stored (1-bit: dithered black and white);
  # JPEG's loss moves it by at most ~2 L* here, a misread channel by tens.
  expected = expected_l(np.asarray(image.convert('L')))
  np.testing.assert_allclose(loaded.l, expected, atol=0.03 if suffix == '.jpg' else 1e-5)
  assert not loaded.had_colour


@pytest.mark.parametrize('suffix', ['.png', '.tif'])
def test_sixteen_bit_greys_keep_their_precision(tmp_path, suffix):
  grey16 = (GREY.astype(np.uint16) * 257 + 100)
  path = write(tmp_path, f'deep{suffix}', Image.fromarray(grey16))
  loaded = images.load_luminance(path)
  l_expected = color.normalize_l(color.rgb_to_lab(
      np.repeat(grey16[..., None] / 65535.0, 3, -1))[..., 0])
  np.testing.assert_allclose(loaded.l, l_expected, atol=1e-5)


def test_transparency_is_composited_over_white(tmp_path):
  rgba = np.zeros((4, 4, 4), np.uint8)  # fully transparent black
  loaded = images.load_luminance(write(tmp_path, 'clear.png', Image.fromarray(rgba)))
  np.testing.assert_allclose(loaded.l, 1.0, atol=1e-4)
  palette = Image.fromarray(GREY).convert('P')
  path = write(tmp_path, 'palette.png', palette, transparency=int(np.asarray(palette)[0, 0]))
  assert images.load_luminance(path).l[0, 0] == pytest.approx(1.0, abs=1e-4)


def test_exif_orientation_is_honoured(tmp_path):
  exif = Image.Exif()
  exif[0x0112] = 6  # stored sideways: rotate 90 degrees clockwise to view
  path = write(tmp_path, 'rotated.jpg', Image.fromarray(GREY), exif=exif)
  assert images.load_luminance(path).l.shape == (GREY.shape[1], GREY.shape[0])


def test_colour_photo_is_flagged(tmp_path):
  loaded = images.load_luminance(write(tmp_path, 'colour.png', Image.fromarray(photo('coffee'))))
  assert loaded.had_colour


@pytest.mark.parametrize('size', [(1, 1), (7, 5)])
def test_tiny_images(tmp_path, size):
  path = write(tmp_path, 'tiny.png', Image.new('L', size, 128))
  assert images.load_luminance(path).l.shape == size[::-1]


@pytest.mark.parametrize('suffix', ['.gif', '.tif'])
def test_several_frames_use_the_first_and_say_so(tmp_path, suffix):
  frames = [Image.new('L', (8, 6), 0), Image.new('L', (8, 6), 255)]
  path = write(tmp_path, f'frames{suffix}', frames[0], save_all=True, append_images=frames[1:])
  loaded = images.load_luminance(path)
  assert loaded.l.max() < 0.01  # the black first frame
  assert any('2 frames' in note and 'first' in note for note in loaded.notes)


def png_header_claiming(width, height):
  """A PNG whose header claims width x height pixels (the data is a few bytes)."""
  def chunk(kind, data):
    return struct.pack('>I', len(data)) + kind + data + struct.pack(
        '>I', zlib.crc32(kind + data) & 0xffffffff)
  ihdr = struct.pack('>IIBBBBB', width, height, 8, 0, 0, 0, 0)
  return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) +
          chunk(b'IDAT', zlib.compress(b'\x00' * 16)) + chunk(b'IEND', b''))


@pytest.mark.parametrize('side', [100_000, 9_000])
def test_huge_header_is_refused_quickly(tmp_path, side):
  path = tmp_path / 'bomb.png'
  path.write_bytes(png_header_claiming(side, side))
  start = time.perf_counter()
  with pytest.raises(images.ImageError, match='bomb.png: .*(limit|too many pixels)'):
    images.load_luminance(path)
  assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize('name,content,problem', [
    ('empty.jpg', b'', 'empty file'),
    ('random.jpg', bytes(range(256)) * 4, 'not an image'),
    ('truncated.png', None, 'damaged'),
])
def test_broken_files_name_the_file_and_the_problem(tmp_path, name, content, problem):
  path = tmp_path / name
  if content is None:
    write(tmp_path, name, Image.fromarray(GREY))
    content = path.read_bytes()[:60]
  path.write_bytes(content)
  with pytest.raises(images.ImageError, match=f'{name}: .*{problem}'):
    images.load_luminance(path)


def tiff_entry(data, tag):
  """Where `tag`'s 12-byte entry is in a little-endian TIFF's first IFD."""
  (ifd,) = struct.unpack_from('<I', data, 4)
  (count,) = struct.unpack_from('<H', data, ifd)
  return next(ifd + 2 + 12 * i for i in range(count)
              if struct.unpack_from('<H', data, ifd + 2 + 12 * i)[0] == tag)


def gif_cut_in_second_frame(keep):
  """A two-frame GIF cut `keep` bytes into its second frame's image descriptor."""
  data = encode(Image.fromarray(GREY), 'GIF', save_all=True,
                append_images=[Image.fromarray(255 - GREY)])
  descriptor = data.rindex(b'\x21\xf9\x04') + 8  # after the second frame's control block
  assert data[descriptor] == 0x2c
  return data[:descriptor + keep]


def tiff_with(edit):
  data = bytearray(encode(Image.fromarray(GREY), 'TIFF'))
  edit(data)
  return bytes(data)


def one_entry_short(data):
  """The first IFD's entry count one short: the next IFD's offset is read from the
  last entry, so a second page that does not exist is looked for."""
  struct.pack_into('<H', data, 8, struct.unpack_from('<H', data, 8)[0] - 1)


def rational_strip_offsets(data):
  struct.pack_into('<H', data, tiff_entry(data, 273) + 2, 5)  # StripOffsets: LONG -> RATIONAL


def dds_without_pixel_format(data):
  return data[:80] + b'\x00' * 4 + data[84:]  # the pixel format's flags: none


def avif_with_junk_data(data):
  start = data.index(b'mdat') + 4
  return data[:start] + b'\x00' * (len(data) - start)


# Found by tests/test_fuzz.py: Pillow raised these as struct.error, IndexError,
# TypeError, NotImplementedError and RuntimeError, which the web server answered 500.
@pytest.mark.filterwarnings('ignore:Corrupt EXIF data')  # Pillow's note on the short IFD
@pytest.mark.parametrize('name,content,problem', [
    ('cut in descriptor.gif', lambda: gif_cut_in_second_frame(3),
     'damaged image: its frames after the first cannot be read .struct.error'),
    ('cut after descriptor.gif', lambda: gif_cut_in_second_frame(9),
     'damaged image: its frames after the first cannot be read .IndexError'),
    ('short IFD.tif', lambda: tiff_with(one_entry_short),
     'damaged image: its frames after the first cannot be read .TypeError: Missing dimensions'),
    ('rational offsets.tif', lambda: tiff_with(rational_strip_offsets),
     'damaged or unsupported image .TypeError'),
    ('no pixel format.dds', lambda: dds_without_pixel_format(
        encode(Image.fromarray(GREY).convert('RGB'), 'DDS')),
     'damaged or unsupported image .NotImplementedError: Unknown pixel format'),
    ('junk data.avif', lambda: avif_with_junk_data(
        encode(Image.fromarray(GREY).convert('RGB'), 'AVIF')),
     'damaged or unsupported image .RuntimeError'),
])
def test_damage_pillow_reports_oddly_is_a_clear_error(name, content, problem):
  if name.endswith('.avif') and not features.check('avif'):
    pytest.skip('this Pillow reads no AVIF')
  with pytest.raises(images.ImageError, match=f'^{name}: {problem}'):
    images.load_luminance(content(), name=name)


def test_png_named_jpg_is_read_by_its_content(tmp_path):
  path = write(tmp_path, 'actually_png.jpg', Image.fromarray(GREY), format='PNG')
  np.testing.assert_allclose(images.load_luminance(path).l, expected_l(GREY), atol=1e-5)


def test_missing_file_and_folder(tmp_path):
  with pytest.raises(images.ImageError, match='no such file'):
    images.load_luminance(tmp_path / 'nothing.jpg')
  with pytest.raises(images.ImageError, match='is a folder'):
    images.load_luminance(tmp_path)


def test_corrupt_exif_block_is_ignored_with_a_note(tmp_path):
  # An Exif block whose TIFF header is garbage, as in real damaged scans.
  garbage = b'\xff\xff\xbeZ\x17#\xff\xff' + b'\x00' * 32
  path = write(tmp_path, 'scan.png', Image.fromarray(GREY), exif=garbage)
  loaded = images.load_luminance(path)
  np.testing.assert_allclose(loaded.l, expected_l(GREY), atol=1e-5)
  assert any('scan.png: unreadable EXIF data' in note for note in loaded.notes)


def test_an_upload_in_memory_is_read_like_its_file(tmp_path):
  path = write(tmp_path, 'photo.jpg', Image.fromarray(photo('coffee')[:40, :60]), quality=90)
  from_file = images.load_luminance(path)
  from_bytes = images.load_luminance(path.read_bytes(), name='upload é.jpg')
  np.testing.assert_array_equal(from_bytes.l, from_file.l)
  assert from_bytes.format == from_file.format == 'JPEG' and from_bytes.had_colour
  with pytest.raises(images.ImageError, match='^upload é.jpg: empty file'):
    images.load_luminance(b'', name='upload é.jpg')
  with pytest.raises(images.TooManyPixels, match='^bomb.png: .*limit'):
    images.load_luminance(png_header_claiming(9_000, 9_000), name='bomb.png')
