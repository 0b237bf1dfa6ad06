"""Every image that enters or leaves the app goes through here: decode, validate, re-encode, thumbnail.

Input bytes are never trusted: the format is sniffed from the bytes, dimensions are checked from the header
before any pixel is decoded, and the stored file is always our own re-encoding without the original metadata.
Every failure surfaces as `ImageRejected` (a `ServiceError`, so the API answers it with the error envelope);
no Pillow exception escapes this module. Pure Python: no Django imports, limits are constants or keyword args.
"""

import base64
import binascii
import io
import logging
import os
import tempfile
import threading
import warnings
from concurrent.futures import Future
from dataclasses import dataclass

from PIL import Image, ImageOps

from avatar_creator.errors import ServiceError, http_status_for

logger = logging.getLogger(__name__)

MAX_IMAGE_BYTES = 10 * 1024 * 1024  # decoded
MAX_SIDE = 2048
UPLOAD_MAX_SIDE = 4096  # an own photo may be this large; it is stored downscaled to MAX_SIDE
THUMBNAIL_SIZE = 300
ALLOWED_FORMATS = {"JPEG", "PNG", "WEBP"}

INVALID_IMAGE = "INVALID_IMAGE"
PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"

# The one map of the image formats the app stores: Pillow's format name -> (content type, file extension).
FORMATS = {"JPEG": ("image/jpeg", "jpg"), "PNG": ("image/png", "png"), "WEBP": ("image/webp", "webp")}
_CONTENT_TYPES = {fmt: content_type for fmt, (content_type, _) in FORMATS.items()}
_EXTENSIONS = {fmt: extension for fmt, (_, extension) in FORMATS.items()}


def extension_for(content_type: str) -> str:
    """The file extension for one of our content types (jpg for anything else)."""
    return next((ext for ct, ext in FORMATS.values() if ct == content_type), "jpg")


def content_type_for(name: str) -> str:
    """The content type of a file we stored, from its extension (image/jpeg for anything else)."""
    extension = name.rsplit(".", 1)[-1].lower()
    return next((ct for ct, ext in FORMATS.values() if ext == extension), "image/jpeg")


# Thumbnail crop anchors for ImageOps.fit: full body keeps the top of a tall image so the face shows.
_THUMBNAIL_CENTERING = {"half_body": (0.5, 0.5), "full_body": (0.5, 0.1)}
_WHITE = (255, 255, 255)
_ALLOWED_NAMES = "JPEG, PNG or WebP"

# Pillow hands every image's pixel memory back to the system when the image is freed (it keeps no blocks by default),
# so the decode, copies and resizes of each preview map fresh pages and pay a page fault per 4 kB. Keeping two freed
# blocks for the next image makes the worker's image work ~1/5 cheaper (process_image of a 1024 px JPEG inside
# preview_attempt: ~22 -> ~18 ms of CPU, page faults per preview 2900 -> 770; 4 blocks measured less, 1 nothing). The
# peak memory grows ~1 MB, but the resident size stays near the peak between images instead of dropping (~9 MB for
# a 1024 px preview; at most two 16 MB blocks after a large upload). Process-wide, like Pillow's own
# PILLOW_BLOCKS_MAX, which wins when set.
_PILLOW_BLOCKS_KEPT = 2
if "PILLOW_BLOCKS_MAX" not in os.environ:
    Image.core.set_blocks_max(_PILLOW_BLOCKS_KEPT)


class ImageRejected(ServiceError):
    """An image we will not store: `code` is INVALID_IMAGE (400) or PAYLOAD_TOO_LARGE (413)."""

    def __init__(self, message: str, *, code: str = INVALID_IMAGE, details: dict | None = None):
        if code not in (INVALID_IMAGE, PAYLOAD_TOO_LARGE):
            raise ValueError(f"unknown image error code {code!r}")
        self.code = code
        self.status = http_status_for(code)
        super().__init__(message, details=details)


@dataclass(frozen=True)
class ProcessedImage:
    image_bytes: bytes
    content_type: str
    extension: str
    width: int
    height: int
    thumbnail_bytes: bytes  # always a THUMBNAIL_SIZE square JPEG


def _too_many_bytes(max_bytes: int) -> ImageRejected:
    megabytes = max_bytes / (1024 * 1024)
    return ImageRejected(
        f"The image is too large; it must be at most {megabytes:g} MB.",
        code=PAYLOAD_TOO_LARGE,
        details={"maxBytes": max_bytes},
    )


def refuse_oversized(size: int, *, max_bytes: int = MAX_IMAGE_BYTES) -> None:
    """PAYLOAD_TOO_LARGE for a file of `size` bytes over the limit, before any of it is read."""
    if size > max_bytes:
        raise _too_many_bytes(max_bytes)


def _too_many_pixels(max_side: int) -> ImageRejected:
    return ImageRejected(
        f"The image dimensions are too large; it must be at most {max_side} px a side.",
        code=PAYLOAD_TOO_LARGE,
        details={"maxSide": max_side},
    )


def decode_base64_image(data: object, *, max_bytes: int = MAX_IMAGE_BYTES) -> bytes:
    """Plain base64 or a `data:image/...;base64,` URI -> raw bytes (not yet known to be an image)."""
    if not isinstance(data, str):
        raise ImageRejected("The image must be a base64-encoded string.")
    payload = data
    if payload[:5].lower() == "data:":
        header, comma, payload = payload.partition(",")
        media_type, _, params = header[5:].partition(";")
        if not comma or not media_type.strip().lower().startswith("image/") or "base64" not in params.lower():
            raise ImageRejected("The image data URI must look like data:image/<type>;base64,<data>.")
    # Refuse by length before touching the content: base64 is 4 chars per 3 bytes, and whitespace
    # (line-wrapped base64) gets a generous allowance so this coarse check never needs a copy.
    if len(payload) * 3 // 4 > max_bytes * 2:
        raise _too_many_bytes(max_bytes)
    compact = "".join(payload.split())
    if not compact:
        raise ImageRejected("The image data is empty.")
    padding = -len(compact) % 4
    if padding == 3:
        raise ImageRejected("The image is not valid base64.")
    compact += "=" * padding  # clients that drop the trailing padding are common and harmless
    if len(compact) * 3 // 4 - compact[-2:].count("=") > max_bytes:
        raise _too_many_bytes(max_bytes)
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):  # ValueError: non-ASCII characters
        raise ImageRejected("The image is not valid base64.") from None


def _sniff_format(raw: bytes) -> str | None:
    """The real format from the magic bytes; claimed extensions and content types are ignored."""
    if raw.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if raw.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
        return "WEBP"
    return None


def _open_header(raw: bytes, fmt: str, *, max_side: int) -> Image.Image:
    """Open lazily (header only) and refuse oversized dimensions before any pixel is decoded."""
    with warnings.catch_warnings():
        # Pillow warns (instead of raising) between MAX_IMAGE_PIXELS and twice that; treat both as a bomb.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(raw), formats=[fmt])
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise _too_many_pixels(max_side) from None
    width, height = img.size
    if width > max_side or height > max_side:
        img.close()
        raise _too_many_pixels(max_side)
    if width < 1 or height < 1:
        img.close()
        raise ImageRejected("The image has no pixels.")
    return img


def _check_size(raw: object, *, max_bytes: int) -> bytes:
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise ImageRejected("The image must be bytes.")
    raw = bytes(raw)
    if not raw:
        raise ImageRejected("The image is empty.")
    if len(raw) > max_bytes:
        raise _too_many_bytes(max_bytes)
    return raw


def _require_format(raw: bytes) -> str:
    fmt = _sniff_format(raw)
    if fmt not in ALLOWED_FORMATS:
        raise ImageRejected(f"The file is not a supported image; upload a {_ALLOWED_NAMES} image.")
    return fmt


def load_image(raw: bytes, *, max_bytes: int = MAX_IMAGE_BYTES, max_side: int = MAX_SIDE) -> Image.Image:
    """Untrusted bytes -> a fully decoded, upright Pillow image, or ImageRejected. The one image check: every
    upload, legacy save and generated image is decoded here, once."""
    raw = _check_size(raw, max_bytes=max_bytes)
    fmt = _require_format(raw)
    try:
        with _open_header(raw, fmt, max_side=max_side) as probe:
            probe.verify()  # structural checks (PNG chunk CRCs); leaves the image unusable, hence a fresh open
        img = _open_header(raw, fmt, max_side=max_side)
        img.load()  # the full decode: truncated or corrupt pixel data fails here
    except ImageRejected:
        raise
    except MemoryError:
        raise _too_many_pixels(max_side) from None
    except Exception as exc:  # a parser fed hostile bytes can raise nearly anything; none of it may escape
        logger.info("Rejected an undecodable %s image: %s: %s", fmt, type(exc).__name__, exc)
        raise ImageRejected(f"The image is damaged or incomplete; upload a valid {_ALLOWED_NAMES} image.") from None
    try:
        ImageOps.exif_transpose(img, in_place=True)  # upright; an image that already is stays as decoded (no copy)
    except Exception:  # malformed EXIF on otherwise good pixels: keep the image as stored
        logger.info("Ignored unreadable EXIF orientation on a %s image.", fmt)
    return img


def _has_visible_alpha(img: Image.Image) -> bool:
    if not img.has_transparency_data:
        return False
    alpha = img.convert("RGBA").getchannel("A")
    return alpha.getextrema() != (255, 255)


def _to_8bit(img: Image.Image) -> Image.Image:
    # 16-bit greyscale PNGs: a plain convert("L") clips everything above 255 to white, so scale instead.
    if img.mode.startswith("I;16") or img.mode == "I":
        return img.convert("I").point(lambda value: value * (1 / 256)).convert("L")
    if img.mode == "F":
        return img.convert("L")
    return img


def _flatten_rgb(img: Image.Image) -> Image.Image:
    """RGB without transparency: `img` itself when it already is (no copy: 3 MB at 1024 px), else a new image,
    transparency flattened onto white."""
    if img.mode == "RGB" and not img.has_transparency_data:
        return img
    img = _to_8bit(img)
    if img.has_transparency_data:
        rgba = img.convert("RGBA")
        flat = Image.new("RGB", rgba.size, _WHITE)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return img.convert("RGB")


def _with_alpha(img: Image.Image) -> Image.Image:
    img = _to_8bit(img)
    if img.has_transparency_data:
        # "transparency" lives in img.info, which is cleared before saving: bake it into an alpha channel.
        return img.convert("LA" if img.mode in ("L", "LA", "La") else "RGBA")
    return img.convert("L" if img.mode in ("1", "L") else "RGB")


def encode_image(img: Image.Image, *, fmt: str = "JPEG", quality: int = 90, optimize: bool = False) -> bytes:
    """Re-encode without metadata (EXIF, ICC, XMP, text chunks are not copied). JPEG flattens alpha onto white.

    `optimize` (JPEG) computes Huffman tables for this image in a second pass: ~3 % smaller, but a 1024 px image takes
    ~8 ms instead of ~3 ms to write. Stored images, written once on every preview's path, skip it; thumbnails (small,
    shown in every grid) take it."""
    fmt = fmt.upper()
    if fmt not in ALLOWED_FORMATS:
        raise ValueError(f"cannot encode images as {fmt!r}")
    try:
        with _scratch_file() as buffer:
            _save(img, buffer, fmt=fmt, quality=quality, optimize=optimize)
            buffer.seek(0)
            return buffer.read()
    except Exception as exc:  # our own pixels should always encode; never leak a Pillow error if not
        logger.warning("Could not encode an image as %s: %s: %s", fmt, type(exc).__name__, exc)
        raise ImageRejected("The image could not be processed.") from None


def _scratch_file():
    """A file to encode into: a real one, not a BytesIO, because Pillow then writes with its C encoder loop, which lets
    other threads run meanwhile (into a BytesIO, a JPEG's encoding holds the GIL throughout: the thumbnail made beside
    it in process_image would wait). In memory where the system offers it (Linux's memfd), else a temporary file."""
    if hasattr(os, "memfd_create"):
        try:
            return os.fdopen(os.memfd_create("lumiku-image", os.MFD_CLOEXEC), "w+b")
        except OSError:
            pass
    return tempfile.TemporaryFile()


def _save(img: Image.Image, buffer, *, fmt: str, quality: int, optimize: bool) -> None:
    if fmt == "JPEG":
        # Plain RGB is written as it is, not copied: Pillow's JPEG writer takes metadata from the save arguments only,
        # but for the comment, which is blanked here, and for `encoderinfo` set on the image, which outranks them (a
        # copy carries none).
        out = _flatten_rgb(img)
        if out is img and getattr(img, "encoderinfo", None):
            out = img.copy()
        out.save(buffer, format="JPEG", quality=quality, optimize=optimize, comment=b"")
        return
    out = _with_alpha(img)
    out.info = {}  # Pillow copies some keys (PNG: icc_profile) from info when saving
    if fmt == "WEBP":
        out.save(buffer, format="WEBP", quality=quality)
    else:
        out.save(buffer, format="PNG")


def make_thumbnail(img: Image.Image, *, body_type: str = "half_body", size: int = THUMBNAIL_SIZE) -> bytes:
    """A size x size JPEG: centre crop for half body, top-weighted crop for full body (keeps the face)."""
    if body_type not in _THUMBNAIL_CENTERING:
        raise ValueError(f"unknown body type {body_type!r}")
    try:
        source = _flatten_rgb(img)  # every step below makes a new image: `img` is never changed
        # Box-average by a whole factor first while at least 1.1x the output's pixels a side are left for the filter: a
        # 1024 px preview resamples from 341 px, 9x less work than from the whole. Lanczos from there is as sharp as
        # bicubic from half the size (edge variance 346 vs 342; Lanczos from the whole: 383) and takes ~0.7 of its time.
        factor = min(source.size) * 10 // (size * 11)
        if factor > 1:
            source = source.reduce(factor)
        square = ImageOps.fit(
            source,
            (size, size),
            method=Image.Resampling.LANCZOS,
            centering=_THUMBNAIL_CENTERING[body_type],
        )
    except Exception as exc:
        logger.warning("Could not make a thumbnail: %s: %s", type(exc).__name__, exc)
        raise ImageRejected("The image could not be processed.") from None
    return encode_image(square, fmt="JPEG", quality=85, optimize=True)


def process_image(raw: bytes, *, body_type: str = "half_body", max_side: int = MAX_SIDE) -> ProcessedImage:
    """Untrusted bytes -> our own re-encoded image plus thumbnail, ready to store.

    Images up to `max_side` a side are accepted (an upload may be larger than what is stored); the stored image is
    downscaled to at most MAX_SIDE a side, upright and without the original metadata.
    """
    img = load_image(raw, max_side=max_side)
    if max(img.size) > MAX_SIDE:
        img = _downscaled(img, MAX_SIDE)
    # PNG only when transparency is actually used; everything else (WebP included) becomes a JPEG.
    fmt = "PNG" if _has_visible_alpha(img) else "JPEG"
    # The thumbnail is made on a thread of its own while this one encodes the image: Pillow lets other threads run
    # while it resizes and encodes (see _scratch_file), so on a machine with a core to spare the two take as long as
    # the longer one (a 1024 px preview, after its decode: ~10.7 -> ~6.9 ms; a VM's idle second vCPU may take a while
    # to join in, bench/README.md's eighth look). Both only read `img`.
    thumbnail = _on_a_thread(make_thumbnail, img, body_type=body_type)
    try:
        image_bytes = encode_image(img, fmt=fmt)
    finally:
        thumbnail.exception()  # waits: the thread never outlives the call, whatever happened here
    return ProcessedImage(
        image_bytes=image_bytes,
        content_type=_CONTENT_TYPES[fmt],
        extension=_EXTENSIONS[fmt],
        width=img.width,
        height=img.height,
        thumbnail_bytes=thumbnail.result(),
    )


def _on_a_thread(function, /, *args, **kwargs) -> Future:
    """`function(*args, **kwargs)` started on a new thread; its result (or exception) in the future returned. A thread
    per call, not a pool: it costs ~0.2 ms, and a pool's threads would not survive the worker's fork."""
    future = Future()

    def run():
        try:
            future.set_result(function(*args, **kwargs))
        except BaseException as exc:  # handed to the caller, which raises it
            future.set_exception(exc)

    threading.Thread(target=run, name="image-work", daemon=True).start()
    return future


def _downscaled(img: Image.Image, side: int) -> Image.Image:
    try:
        scaled = img.copy()
        scaled.thumbnail((side, side), Image.Resampling.LANCZOS)
    except Exception as exc:
        logger.warning("Could not downscale an image: %s: %s", type(exc).__name__, exc)
        raise ImageRejected("The image could not be processed.") from None
    return scaled


def image_info(raw: bytes, *, max_side: int = MAX_SIDE) -> tuple[str, int, int]:
    """(content_type, width, height) from the header only: a cheap first look. The pixels are checked when the
    bytes are decoded (process_image / load_image), once."""
    raw = _check_size(raw, max_bytes=MAX_IMAGE_BYTES)
    fmt = _require_format(raw)
    try:
        with _open_header(raw, fmt, max_side=max_side) as img:
            width, height = img.size
    except ImageRejected:
        raise
    except Exception:
        raise ImageRejected(f"The image is damaged; upload a valid {_ALLOWED_NAMES} image.") from None
    return _CONTENT_TYPES[fmt], width, height
