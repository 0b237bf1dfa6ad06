"""The image guards in avatar_creator.images: each test fails if the guard it names stops working."""

import base64
import io
import random
import struct
import threading
import time
import warnings
import zlib

import pytest
from PIL import Image, ImageCms, ImageFilter, ImageOps, ImageStat, PngImagePlugin

from avatar_creator import images
from avatar_creator.images import (
    ImageRejected,
    ProcessedImage,
    decode_base64_image,
    encode_image,
    image_info,
    load_image,
    make_thumbnail,
    process_image,
)

RED = (255, 0, 0)
BLUE = (0, 0, 255)


def _encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def _photo(size: tuple[int, int] = (320, 240)) -> Image.Image:
    """Noise, so JPEG data is long enough that truncating it really cuts pixel data."""
    return Image.merge("RGB", [Image.effect_noise(size, 60 + 20 * band) for band in range(3)])


def _open(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _bilevel_png(width: int, height: int) -> bytes:
    """A valid all-black 1-bit PNG: huge on decode, a few KB on the wire (a decompression bomb)."""
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed pixels
    compressor = zlib.compressobj(9)
    rows_per_block = 256
    idat = b"".join(compressor.compress(row * rows_per_block) for _ in range(height // rows_per_block))
    idat += compressor.compress(row * (height % rows_per_block)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def _rejected(call, *args: object, **kwargs: object) -> ImageRejected:
    with pytest.raises(ImageRejected) as info:
        call(*args, **kwargs)
    return info.value


def _pixel_close(actual: tuple[int, ...], expected: tuple[int, int, int], tolerance: int = 40) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual[:3], expected, strict=True))


@pytest.fixture
def jpeg_bytes() -> bytes:
    return _encode(_photo(), "JPEG", quality=92)


# ImageRejected


def test_image_rejected_carries_code_status_and_message():
    error = ImageRejected("Too big.", code="PAYLOAD_TOO_LARGE")

    assert (error.code, error.status, error.message, str(error)) == ("PAYLOAD_TOO_LARGE", 413, "Too big.", "Too big.")


def test_image_rejected_defaults_to_invalid_image_400():
    error = ImageRejected("Broken.")

    assert (error.code, error.status) == ("INVALID_IMAGE", 400)


# decode_base64_image


def test_decode_base64_image_accepts_plain_base64(jpeg_bytes):
    assert decode_base64_image(base64.b64encode(jpeg_bytes).decode()) == jpeg_bytes


def test_decode_base64_image_accepts_data_uri_prefix(jpeg_bytes):
    uri = "data:image/jpeg;base64," + base64.b64encode(jpeg_bytes).decode()

    assert decode_base64_image(uri) == jpeg_bytes


def test_decode_base64_image_accepts_line_wrapped_base64(jpeg_bytes):
    wrapped = base64.encodebytes(jpeg_bytes).decode()  # MIME style: a newline every 76 characters

    assert decode_base64_image(wrapped) == jpeg_bytes


def test_decode_base64_image_accepts_missing_padding():
    assert decode_base64_image(base64.b64encode(b"abcd").decode().rstrip("=")) == b"abcd"


@pytest.mark.parametrize("value", [None, 42, b"aGVsbG8=", ["aGVsbG8="], {"data": "aGVsbG8="}])
def test_decode_base64_image_rejects_non_string(value):
    error = _rejected(decode_base64_image, value)

    assert (error.code, error.status) == ("INVALID_IMAGE", 400)


@pytest.mark.parametrize("value", ["", "   ", "not base64 at all!", "abcde", "aGVsbG8=é", "data:image/png;base64,%%%"])
def test_decode_base64_image_rejects_garbage(value):
    error = _rejected(decode_base64_image, value)

    assert (error.code, error.status) == ("INVALID_IMAGE", 400)


@pytest.mark.parametrize("prefix", ["data:text/html;base64,", "data:image/png,", "data:image/png;base64"])
def test_decode_base64_image_rejects_non_image_data_uri(prefix, jpeg_bytes):
    error = _rejected(decode_base64_image, prefix + base64.b64encode(jpeg_bytes).decode())

    assert error.code == "INVALID_IMAGE"


def test_decode_base64_image_rejects_oversized_before_decoding(monkeypatch):
    def must_not_decode(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("an oversized payload was decoded")

    monkeypatch.setattr(images.base64, "b64decode", must_not_decode)
    # Not even valid base64: a size check that ran after decoding would answer INVALID_IMAGE instead.
    huge = "!" * (30 * 1024 * 1024)
    started = time.monotonic()

    error = _rejected(decode_base64_image, huge)

    assert (error.code, error.status) == ("PAYLOAD_TOO_LARGE", 413)
    assert time.monotonic() - started < 1.0


def test_decode_base64_image_rejects_just_over_the_limit_413():
    error = _rejected(decode_base64_image, base64.b64encode(b"x" * 1001).decode(), max_bytes=1000)

    assert (error.code, error.status) == ("PAYLOAD_TOO_LARGE", 413)


def test_decode_base64_image_accepts_exactly_the_limit():
    assert decode_base64_image(base64.b64encode(b"x" * 1000).decode(), max_bytes=1000) == b"x" * 1000


# load_image: format sniffing


@pytest.mark.parametrize(
    "payload",
    [
        b"just some text, definitely not an image",
        b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>",
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>',
        b'<svg xmlns="http://www.w3.org/2000/svg"><rect width="10" height="10"/></svg>',
        b"%PDF-1.7\n",
    ],
    ids=["text", "html", "svg-xml", "svg", "pdf"],
)
def test_load_image_rejects_non_image_bytes(payload):
    error = _rejected(load_image, payload)

    assert (error.code, error.status) == ("INVALID_IMAGE", 400)
    assert "JPEG, PNG or WebP" in error.message


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_load_image_rejects_other_real_image_formats(fmt):
    error = _rejected(load_image, _encode(_photo((40, 30)), fmt))

    assert (error.code, error.status) == ("INVALID_IMAGE", 400)
    assert "JPEG, PNG or WebP" in error.message


@pytest.mark.parametrize("value", ["a string", None, 123])
def test_load_image_rejects_non_bytes(value):
    assert _rejected(load_image, value).code == "INVALID_IMAGE"


def test_load_image_rejects_empty_bytes():
    assert _rejected(load_image, b"").code == "INVALID_IMAGE"


def test_process_image_sniffs_format_instead_of_trusting_the_claim():
    # A transparent PNG sent as if it were a JPEG: the bytes decide, so it stays a PNG.
    png = _encode(Image.new("RGBA", (64, 64), (0, 128, 0, 100)), "PNG")
    claimed_jpeg = decode_base64_image("data:image/jpeg;base64," + base64.b64encode(png).decode())

    processed = process_image(claimed_jpeg)

    assert (processed.content_type, processed.extension) == ("image/png", "png")
    assert _open(processed.image_bytes).format == "PNG"


def test_load_image_rejects_html_claiming_to_be_jpeg():
    html = decode_base64_image("data:image/jpeg;base64," + base64.b64encode(b"<html><body>hi</body></html>").decode())

    assert _rejected(load_image, html).code == "INVALID_IMAGE"


def test_load_image_rejects_jpeg_magic_followed_by_garbage():
    assert _rejected(load_image, b"\xff\xd8\xff" + b"\x00" * 500).code == "INVALID_IMAGE"


# load_image: damaged files


def test_load_image_rejects_truncated_jpeg(jpeg_bytes):
    error = _rejected(load_image, jpeg_bytes[: len(jpeg_bytes) // 2])

    assert (error.code, error.status) == ("INVALID_IMAGE", 400)


def test_load_image_rejects_truncated_png():
    png = _encode(_photo(), "PNG")

    assert _rejected(load_image, png[: len(png) // 2]).code == "INVALID_IMAGE"


def test_load_image_rejects_png_with_corrupt_pixel_data():
    png = bytearray(_encode(_photo((40, 30)), "PNG"))
    png[-20] ^= 0xFF  # inside the last IDAT's compressed data

    assert _rejected(load_image, bytes(png)).code == "INVALID_IMAGE"


def test_load_image_rejects_png_with_bad_chunk_checksum():
    png = bytearray(_encode(_photo((40, 30)), "PNG"))
    png[-13] ^= 0xFF  # the last IDAT's CRC (IEND is the final 12 bytes): the pixels still decode

    assert _rejected(load_image, bytes(png)).code == "INVALID_IMAGE"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_load_image_never_leaks_a_pillow_exception_on_corrupt_bytes(fmt):
    original = _encode(_photo((48, 32)), fmt)
    rng = random.Random(fmt)
    for _ in range(60):
        corrupt = bytearray(original)
        for _ in range(rng.randint(1, 8)):
            corrupt[rng.randrange(len(corrupt))] = rng.randrange(256)
        corrupt = corrupt[: rng.randint(1, len(corrupt))]
        try:
            load_image(bytes(corrupt))
        except ImageRejected as error:
            assert error.status in (400, 413)


# load_image: size limits


def test_load_image_rejects_byte_length_over_limit_413(jpeg_bytes):
    error = _rejected(load_image, jpeg_bytes, max_bytes=len(jpeg_bytes) - 1)

    assert (error.code, error.status) == ("PAYLOAD_TOO_LARGE", 413)


def test_load_image_accepts_exactly_max_side():
    img = load_image(_encode(Image.new("RGB", (2048, 16), RED), "PNG"))

    assert img.size == (2048, 16)


@pytest.mark.parametrize("size", [(2049, 16), (16, 2049)])
def test_load_image_rejects_dimension_over_max_side_413(size):
    error = _rejected(load_image, _encode(Image.new("RGB", size, RED), "PNG"))

    assert (error.code, error.status) == ("PAYLOAD_TOO_LARGE", 413)
    assert "2048 px" in error.message


def test_load_image_rejects_real_decompression_bomb_before_decoding():
    # 12000 x 12000 = 144 M pixels: above Pillow's warning threshold, below its error threshold.
    bomb = _bilevel_png(12000, 12000)
    assert len(bomb) < 64 * 1024

    started = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        error = _rejected(load_image, bomb)

    assert (error.code, error.status) == ("PAYLOAD_TOO_LARGE", 413)
    assert time.monotonic() - started < 1.0
    assert [w.category.__name__ for w in caught] == []  # Pillow's DecompressionBombWarning does not leak


@pytest.mark.parametrize("side", [4000, 30000, 50000])
def test_load_image_rejects_header_claiming_huge_dimensions_413(side):
    # Hand-made IHDR with almost no pixel data: decoding first would fail as INVALID_IMAGE, not 413.
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    bomb = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _png_chunk(b"IEND", b"")
    )

    error = _rejected(load_image, bomb)

    assert (error.code, error.status) == ("PAYLOAD_TOO_LARGE", 413)


def test_load_image_max_side_is_a_keyword_limit():
    error = _rejected(load_image, _encode(Image.new("RGB", (101, 50), RED), "PNG"), max_side=100)

    assert error.code == "PAYLOAD_TOO_LARGE"


# load_image: orientation


def test_load_image_applies_exif_orientation():
    # Stored landscape, red on the left; orientation 6 means "rotate 90 degrees clockwise to display".
    stored = Image.new("RGB", (100, 50), BLUE)
    stored.paste(RED, (0, 0, 50, 50))
    exif = Image.Exif()
    exif[0x0112] = 6
    raw = _encode(stored, "JPEG", quality=95, exif=exif.tobytes())

    img = load_image(raw)

    assert img.size == (50, 100)
    assert _pixel_close(img.getpixel((25, 10)), RED)
    assert _pixel_close(img.getpixel((25, 90)), BLUE)


# encode_image


def test_encode_image_flattens_alpha_onto_white_for_jpeg():
    transparent = Image.new("RGBA", (20, 20), (255, 0, 0, 0))

    out = _open(encode_image(transparent, fmt="JPEG"))

    assert (out.format, out.mode) == ("JPEG", "RGB")
    assert _pixel_close(out.getpixel((10, 10)), (255, 255, 255), tolerance=3)


def test_encode_image_keeps_alpha_for_png():
    half = Image.new("RGBA", (20, 20), (255, 0, 0, 128))

    out = _open(encode_image(half, fmt="PNG"))

    assert (out.format, out.mode, out.getpixel((10, 10))) == ("PNG", "RGBA", (255, 0, 0, 128))


def test_encode_image_keeps_palette_transparency_for_png():
    palette = Image.new("P", (10, 10), 0)
    palette.putpalette([255, 0, 0, 0, 0, 255])
    palette.putpixel((0, 0), 1)
    palette.info["transparency"] = 1

    out = _open(encode_image(palette, fmt="PNG")).convert("RGBA")

    assert (out.getpixel((0, 0))[3], out.getpixel((5, 5))) == (0, (255, 0, 0, 255))


def test_encode_image_scales_16_bit_greyscale_instead_of_clipping():
    grey = Image.new("I;16", (4, 4), 32768)  # mid grey in 16 bits

    out = _open(encode_image(grey, fmt="PNG"))

    assert out.getpixel((0, 0)) == 128


def test_encode_image_strips_exif_and_icc():
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F] = "SpyCam Inc."  # Make
    exif[0x8825] = {2: (1.0, 2.0, 3.0)}  # GPS info
    source = _open(_encode(_photo((64, 48)), "JPEG", exif=exif.tobytes(), icc_profile=icc, comment=b"<script>"))
    source.load()  # an RGB JPEG, decoded: the kind a preview's re-encode writes as it is, without a copy
    assert {"exif", "icc_profile", "comment"} <= set(source.info)  # the fixture really carries metadata

    for fmt in ("JPEG", "PNG", "WEBP"):
        encoded = encode_image(source, fmt=fmt)
        out = _open(encoded)
        assert (out.format, out.info.get("exif"), out.info.get("icc_profile")) == (fmt, None, None)
        assert (dict(out.getexif()), out.info.get("comment"), b"<script>" in encoded) == ({}, None, False)


def test_encode_image_ignores_encoder_settings_left_on_the_image():
    """Pillow lets `encoderinfo` set on an image outrank the save's arguments: a plain RGB image written without a
    copy must not carry EXIF or a comment through it."""
    exif = Image.Exif()
    exif[0x010F] = "SpyCam Inc."
    source = _photo((64, 48))
    source.encoderinfo = {"exif": exif.tobytes(), "comment": b"<script>"}
    encoded = encode_image(source, fmt="JPEG")
    out = _open(encoded)
    assert (dict(out.getexif()), out.info.get("comment"), b"SpyCam" in encoded) == ({}, None, False)


def test_encode_image_does_not_modify_its_input():
    source = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    source.info["icc_profile"] = b"not really a profile"

    encode_image(source, fmt="JPEG")

    assert (source.mode, source.info) == ("RGBA", {"icc_profile": b"not really a profile"})


def test_encode_image_refuses_unknown_format():
    with pytest.raises(ValueError):
        encode_image(Image.new("RGB", (4, 4)), fmt="GIF")


# make_thumbnail


def test_make_thumbnail_is_a_300_square_jpeg():
    thumb = _open(make_thumbnail(_photo((1024, 1024))))

    assert (thumb.format, thumb.size, thumb.mode) == ("JPEG", (300, 300), "RGB")


def _red_top_band_portrait() -> Image.Image:
    """768 x 1344 (the full-body size): a red band over the top 200 rows, blue below."""
    img = Image.new("RGB", (768, 1344), BLUE)
    img.paste(RED, (0, 0, 768, 200))
    return img


def test_make_thumbnail_full_body_keeps_the_top():
    thumb = _open(make_thumbnail(_red_top_band_portrait(), body_type="full_body"))

    assert thumb.size == (300, 300)
    assert _pixel_close(thumb.getpixel((150, 5)), RED)
    assert _pixel_close(thumb.getpixel((150, 295)), BLUE)


def test_make_thumbnail_half_body_crops_the_centre():
    # The same picture centre-cropped starts below the band: the top-weighting above is what keeps it.
    thumb = _open(make_thumbnail(_red_top_band_portrait(), body_type="half_body"))

    assert _pixel_close(thumb.getpixel((150, 5)), BLUE)


def test_make_thumbnail_half_body_of_a_wide_image_crops_the_centre():
    wide = Image.new("RGB", (900, 300), RED)
    wide.paste(BLUE, (300, 0, 600, 300))

    thumb = _open(make_thumbnail(wide))

    assert [_pixel_close(thumb.getpixel((x, 150)), BLUE) for x in (5, 150, 295)] == [True, True, True]


def _edge_variance(img: Image.Image) -> float:
    return ImageStat.Stat(img.convert("L").filter(ImageFilter.FIND_EDGES)).var[0]


def test_make_thumbnail_keeps_a_photos_detail():
    """The cheap path (box average, then Lanczos) keeps about the detail of Lanczos over the whole picture (0.80 of
    its edge variance; bicubic from half the size keeps 0.76). A softer shortcut (bicubic after a box average by 3:
    0.69) fails this."""
    noise = Image.effect_noise((1024, 1024), 40).filter(ImageFilter.GaussianBlur(1.2))
    photo = Image.merge("RGB", (noise, noise.transpose(Image.Transpose.ROTATE_90), noise))
    whole = ImageOps.fit(photo, (300, 300), method=Image.Resampling.LANCZOS)
    reference = _open(images.encode_image(whole, quality=85, optimize=True))  # the thumbnail's own JPEG settings

    assert _edge_variance(_open(make_thumbnail(photo))) >= 0.75 * _edge_variance(reference)


def test_make_thumbnail_refuses_unknown_body_type():
    with pytest.raises(ValueError):
        make_thumbnail(Image.new("RGB", (10, 10)), body_type="torso")


# process_image


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_process_image_reencodes_each_allowed_format(fmt):
    raw = _encode(_photo((320, 240)), fmt)

    processed = process_image(raw)

    assert isinstance(processed, ProcessedImage)
    assert processed.image_bytes != raw
    out = _open(processed.image_bytes)
    assert (out.format, out.size) == ("JPEG", (320, 240))
    assert (processed.content_type, processed.extension, processed.width, processed.height) == (
        "image/jpeg",
        "jpg",
        320,
        240,
    )
    assert _open(processed.thumbnail_bytes).size == (300, 300)


def test_process_image_keeps_png_with_visible_alpha_as_png():
    img = Image.new("RGBA", (80, 60), (0, 0, 255, 255))
    img.paste((0, 0, 0, 0), (0, 0, 40, 60))

    processed = process_image(_encode(img, "PNG"))

    out = _open(processed.image_bytes)
    assert (processed.content_type, processed.extension, out.format, out.mode) == ("image/png", "png", "PNG", "RGBA")
    assert (out.getpixel((10, 10))[3], out.getpixel((70, 10))) == (0, (0, 0, 255, 255))
    assert _open(processed.thumbnail_bytes).format == "JPEG"


def test_process_image_turns_opaque_rgba_png_into_jpeg():
    processed = process_image(_encode(Image.new("RGBA", (40, 40), (10, 200, 10, 255)), "PNG"))

    assert (processed.content_type, _open(processed.image_bytes).format) == ("image/jpeg", "JPEG")


def test_process_image_converts_cmyk_jpeg_to_rgb():
    processed = process_image(_encode(_photo((64, 64)).convert("CMYK"), "JPEG"))

    assert _open(processed.image_bytes).mode == "RGB"


def test_process_image_reports_dimensions_after_exif_rotation():
    exif = Image.Exif()
    exif[0x0112] = 8
    processed = process_image(_encode(_photo((120, 80)), "JPEG", exif=exif.tobytes()))

    assert (processed.width, processed.height) == (80, 120)
    assert _open(processed.image_bytes).size == (80, 120)


def test_process_image_strips_png_text_and_icc():
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "secret location")
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    img = Image.new("RGBA", (30, 30), (0, 0, 0, 0))
    raw = _encode(img, "PNG", pnginfo=info, icc_profile=icc)

    out = _open(process_image(raw).image_bytes)

    assert (out.format, out.info.get("Comment"), out.info.get("icc_profile")) == ("PNG", None, None)


def test_process_image_full_body_thumbnail_is_top_weighted():
    processed = process_image(_encode(_red_top_band_portrait(), "PNG"), body_type="full_body")

    assert (processed.width, processed.height) == (768, 1344)
    assert _pixel_close(_open(processed.thumbnail_bytes).getpixel((150, 5)), RED)


def test_process_image_rejects_gif():
    assert _rejected(process_image, _encode(_photo((30, 30)), "GIF")).code == "INVALID_IMAGE"


def test_process_image_makes_the_thumbnail_beside_the_encoding_on_a_thread_of_its_own(monkeypatch):
    """The thumbnail is made on a second thread while the image is encoded (on a spare core the two overlap), and
    that thread is gone when process_image returns."""
    threads = {}
    real_thumbnail, real_encode = images.make_thumbnail, images.encode_image

    def thumbnail(*args, **kwargs):
        threads["thumbnail"] = threading.get_ident()
        return real_thumbnail(*args, **kwargs)

    def encode(*args, **kwargs):
        threads.setdefault("image", threading.get_ident())  # the thumbnail's own encoding comes later, on its thread
        return real_encode(*args, **kwargs)

    monkeypatch.setattr(images, "make_thumbnail", thumbnail)
    monkeypatch.setattr(images, "encode_image", encode)
    before = threading.active_count()

    processed = process_image(_encode(_photo((640, 480)), "JPEG"))

    assert threads["image"] == threading.get_ident() != threads["thumbnail"]
    assert threading.active_count() == before
    assert _open(processed.thumbnail_bytes).size == (300, 300)


def test_process_image_raises_the_thumbnails_error_from_its_thread(monkeypatch):
    def broken(*args, **kwargs):
        raise ImageRejected("The image could not be processed.")

    monkeypatch.setattr(images, "make_thumbnail", broken)
    before = threading.active_count()

    assert _rejected(process_image, _encode(_photo((64, 64)), "JPEG")).code == "INVALID_IMAGE"
    assert threading.active_count() == before


def test_process_image_waits_for_the_thumbnail_when_the_encoding_fails(monkeypatch):
    finished = []
    real_thumbnail = images.make_thumbnail

    def slow_thumbnail(*args, **kwargs):
        time.sleep(0.05)
        finished.append(True)
        return real_thumbnail(*args, **kwargs)

    def broken(*args, **kwargs):
        raise ImageRejected("The image could not be processed.")

    monkeypatch.setattr(images, "make_thumbnail", slow_thumbnail)
    monkeypatch.setattr(images, "encode_image", broken)

    _rejected(process_image, _encode(_photo((64, 64)), "JPEG"))

    assert finished == [True]  # the thread did not outlive the call


@pytest.mark.parametrize("memfd", [True, False], ids=["memfd", "temporary-file"])
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_encode_image_writes_what_pillow_writes_into_memory(monkeypatch, memfd, fmt):
    """The encoding goes through a real file (so that Pillow lets other threads run); the bytes are the same as Pillow
    writes into a BytesIO, with Linux's memfd or, where there is none, a temporary file."""
    if not memfd:
        monkeypatch.delattr(images.os, "memfd_create", raising=False)
    photo = _photo((200, 150))
    params = {"JPEG": {"quality": 90, "optimize": False, "comment": b""}, "PNG": {}, "WEBP": {"quality": 90}}[fmt]

    assert encode_image(photo, fmt=fmt) == _encode(photo, fmt, **params)


def test_encode_image_falls_back_to_a_temporary_file_when_memfd_fails(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(images.os, "memfd_create", refuse, raising=False)
    photo = _photo((64, 48))

    assert encode_image(photo) == _encode(photo, "JPEG", quality=90, optimize=False, comment=b"")


# image_info


@pytest.mark.parametrize(
    ("fmt", "content_type"), [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("WEBP", "image/webp")]
)
def test_image_info_reads_type_and_size(fmt, content_type):
    assert image_info(_encode(_photo((70, 50)), fmt)) == (content_type, 70, 50)


def test_image_info_rejects_non_image():
    assert _rejected(image_info, b"<svg/>").code == "INVALID_IMAGE"
