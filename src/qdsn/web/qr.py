"""What a certificate's QR code carries, turned into the text the verify page checks: the one QR code
read from a picture (a phone's photo, the PNG the present page gives, a camera frame) by zxing-cpp,
and, when the code carries the link where the holder's node published the presentation (a
presentation is larger than a QR code holds), the presentation fetched from that link.

Everything here comes from a stranger. A picture is bounded before its pixels are decoded (bytes,
format, pixel count: no decompression bomb), and only two are decoded at once. A link is fetched
only when it has the exact form of a published presentation (a QDSN node's path, no user, query or
fragment) and through the node's outbound policy (`net.outbound`: only a member node the ledger
records, public addresses unless the operator allows others, no redirects), within
PRESENTATION_SECONDS and the size of a presentation; what it gives is then verified like pasted
text, so the holder's node is trusted for nothing."""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterable
from typing import Any

from qdsn.errors import InvalidInput, RateLimited, Unavailable
from qdsn.net import outbound
from qdsn.net.outbound import Policy

MAX_PICTURE = 8 << 20  # a phone's photo (JPEG) is a few MB; a larger file is refused unread
MAX_PIXELS = 24_000_000  # decoded at most: a 24 MP photo (6000 × 4000), 24 MB in grey
MAX_JPEG_PIXELS = 4 * MAX_PIXELS  # a larger JPEG is decoded at half its width and height (libjpeg's scaling)
FORMATS = ("PNG", "JPEG")
DECODING = 2  # pictures decoded at once by this process: the rest wait DECODE_WAIT, then are told to retry
DECODE_WAIT = 5.0
MAX_PRESENTATION = 512 * 1024  # a presentation fetched from a link, as one pasted may be
PRESENTATION_SECONDS = 10.0
READ_SECONDS = 5.0
# The link the present page's QR code carries (web/manufacturer.py `publish_presentation`): a node's
# origin (a host name or IP address, a port) and the path of one published presentation, nothing else.
PUBLISHED_LINK = re.compile(
    r"https?://(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?"
    r"/console/enterprise/presentations/[A-Za-z0-9_-]{22}"
)

# The start of an SD-JWT presentation: the issuer's JWT (three base64url parts), then "~"
PRESENTATION = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*~")

_decoding = threading.BoundedSemaphore(DECODING)


class NoQRCode(InvalidInput):
    """A picture in which no QR code is found (a camera frame before the code is in view)."""


def read_picture(data: bytes) -> str:
    """The text of the one QR code in a PNG or JPEG picture; InvalidInput saying what is wrong with the
    picture otherwise, RateLimited when other pictures are being decoded for longer than DECODE_WAIT."""
    import zxingcpp

    if not _decoding.acquire(timeout=DECODE_WAIT):
        raise RateLimited("this node is reading other pictures", retry_after=2)
    try:
        grey = _grey(data)
        found = zxingcpp.read_barcodes(grey, formats=zxingcpp.BarcodeFormat.QRCode)
    finally:
        _decoding.release()
    contents = list(dict.fromkeys(bytes(code.bytes) for code in found))  # a code found twice is one code
    if not contents:
        raise NoQRCode("no QR code was found in the picture",
                           "photograph the certificate's QR code straight on, close enough that it fills most of "
                           "the picture, in good light; or paste the presentation")  # fmt: skip
    if len(contents) > 1:
        raise InvalidInput(f"the picture shows {len(contents)} QR codes, and only the certificate's is read",
                           "photograph the certificate's QR code alone")  # fmt: skip
    try:
        text = contents[0].decode("utf-8").strip()
    except UnicodeDecodeError:
        raise InvalidInput("the QR code carries binary data, not a presentation or its link") from None
    if not text:
        raise InvalidInput("the QR code is empty")
    return text


def _grey(data: bytes) -> Any:
    """The picture in 8-bit grey, light where it is transparent, once its format and size are known to
    be within bounds (read from its header before any pixel is decoded)."""
    from PIL import Image, UnidentifiedImageError

    if len(data) > MAX_PICTURE:
        raise InvalidInput(f"the picture is larger than {MAX_PICTURE >> 20} MB", "send a smaller photo of the QR code")
    try:
        image = Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError:  # Pillow's own bound, far above ours
        raise InvalidInput(f"the picture has more than the {MAX_JPEG_PIXELS // 1_000_000} million pixels this page "
                           "reads", "send a smaller photo of the QR code") from None  # fmt: skip
    except (UnidentifiedImageError, OSError, ValueError):
        raise InvalidInput("the file is not a PNG or JPEG picture",
                           "photograph the QR code, or save it as PNG or JPEG") from None  # fmt: skip
    width, height = image.size
    limit = MAX_JPEG_PIXELS if image.format == "JPEG" else MAX_PIXELS
    if width * height > limit:
        raise InvalidInput(f"the picture is {width} × {height} pixels, more than the {limit // 1_000_000} million "
                           "this page reads", "send a smaller photo of the QR code")  # fmt: skip
    try:
        if image.format == "JPEG":  # libjpeg decodes straight to grey, at a reduced scale if need be
            half = width * height > MAX_PIXELS
            image.draft("L", ((width + 1) // 2, (height + 1) // 2) if half else (width, height))
        image.load()
        if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            image = image.convert("RGBA")
            white = Image.new("RGBA", image.size, "white")
            image = Image.alpha_composite(white, image)
        elif image.mode.startswith("I;16"):  # 16-bit grey (PNG): to 8 bits
            image = image.convert("I").point(lambda v: v * (1 / 256))
        return image.convert("L")
    except (OSError, ValueError, SyntaxError):  # truncated or corrupt data; Pillow says which
        raise InvalidInput("the picture is damaged or cut short", "send the photo again") from None


def published_link(text: str) -> bool:
    """Whether `text` is a link to a presentation a holder's node published (what the present page's
    QR code carries when the presentation does not fit in one)."""
    return PUBLISHED_LINK.fullmatch(text) is not None


def carries_presentation(text: str) -> bool:
    """Whether `text` has the form of a presentation (an SD-JWT) or of a bundle (JSON), to be verified;
    what a QR code or a link carries otherwise is said to be something else, not reported as a failed
    certificate."""
    return text.startswith("{") or PRESENTATION.match(text) is not None


def fetch_published(link: str, ca: str | None = None, *, policy: Policy | None = None,
                    origins: Iterable[str] | None = None) -> str:  # fmt: skip
    """The presentation published at `link` (see `published_link`), fetched through the outbound policy
    (`net.outbound`; by default the environment's, trusting the CA file `ca` for https) from one of
    `origins` (the member nodes the ledger records; None: any host the policy lets through), without
    redirects, within PRESENTATION_SECONDS and MAX_PRESENTATION bytes; what comes back is only text for
    the verifier. Unavailable (or Refused) saying why when it cannot be had: for this node's log, not
    for the page, which says one thing whatever the reason."""
    if not published_link(link):
        raise InvalidInput(f"{link[:200]} is not the link of a presentation a QDSN node published")
    origin = link.split("/console/", 1)[0]
    if policy is None:
        policy = Policy.of({"operator_ca": ca} if ca else {})
    try:
        body = outbound.get(link, policy, origins=origins, accept="text/plain", max_bytes=MAX_PRESENTATION,
                            seconds=PRESENTATION_SECONDS, read_seconds=READ_SECONDS)  # fmt: skip
    except (Unavailable, outbound.Refused) as e:
        raise Unavailable(f"the presentation could not be fetched from the holder's node at {origin}: {e.what}",
                          "try again later, or ask the holder for the presentation itself") from None  # fmt: skip
    try:
        return body.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise InvalidInput(f"the holder's node at {origin} did not give text at this link") from None
