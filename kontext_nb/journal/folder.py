"""The runs folder's one owner: where results, thumbnails, inputs and grids live, and that every path
handed out lies inside it.

Files are named by the hash of the image bytes fal returned, written to a temporary name
and renamed into place, so a crash never leaves half a file under a real name.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import JournalError

if TYPE_CHECKING:
    pass

# PIL and the metadata writer load only when a file is written: reading the journal (and %load_ext) stays cheap

RESULTS = "images"
INPUTS = "inputs"
THUMBS = "thumbs"
GRIDS = "grids"
URL_INPUT = "url:"  # an input image given as a URL is remembered by its URL, not kept
THUMB_SIDE = 256
EXTENSIONS = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp", "image/gif": ".gif"}


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def extension(content_type: str, data: bytes) -> str:
    """The file ending the bytes call for; the claimed type only when the bytes say nothing."""
    from ..images import sniff_content_type

    return EXTENSIONS.get(sniff_content_type(data) or content_type, ".bin")


def save_result_image(folder: Path, data: bytes, content_type: str, meta: dict[str, Any]) -> tuple[str, bytes]:
    """Write one result image with its metadata; returns its path (relative to the runs folder)
    and the bytes on disk. The same image saved again keeps the file (and metadata) it has."""
    from . import metadata

    name = hashlib.sha256(data).hexdigest()[:32] + extension(content_type, data)
    relative = Path(RESULTS) / name
    target = folder / relative
    if target.exists():
        return relative.as_posix(), target.read_bytes()
    try:
        tagged = metadata.embed(data, meta)
    except ValueError:  # a format metadata cannot go into: keep the bytes as they are
        tagged = data
    _atomic_write(target, tagged)
    return relative.as_posix(), tagged


def thumbnail_path(folder: Path, image_relative: str) -> Path:
    return folder / THUMBS / (Path(image_relative).stem + ".jpg")


def save_thumbnail(folder: Path, image_relative: str, data: bytes) -> None:
    """A small JPEG beside each result, so tables and galleries never decode full-size files (none for an image
    too large to decode: images.MAX_INPUT_PIXELS)."""
    target = thumbnail_path(folder, image_relative)
    if not target.exists():
        thumb = _thumbnail(data)
        if thumb is not None:
            _atomic_write(target, thumb)


def _thumbnail(data: bytes) -> bytes | None:
    from ..errors import ImageTooLarge
    from ..images import encode_thumbnail, preview

    try:
        return encode_thumbnail(preview(data, THUMB_SIDE).convert("RGB"), THUMB_SIDE)[0]
    except ImageTooLarge:
        return None


def read_thumbnail(folder: Path, image_relative: str) -> bytes | None:
    """The small JPEG of a result image: the saved one, else made from the file now (and kept); None when the
    image is gone or unreadable. Galleries and tables read these, never the full-size files."""
    target = thumbnail_path(folder, image_relative)
    try:
        return target.read_bytes()
    except OSError:
        pass
    from PIL import Image

    try:
        data = _thumbnail(inside(folder, image_relative).read_bytes())
    except (OSError, ValueError, JournalError, Image.DecompressionBombError):
        return None
    if data is None:
        return None
    with contextlib.suppress(OSError):  # a read-only runs folder: the thumbnail is made again next time
        _atomic_write(target, data)
    return data


def save_input(folder: Path, data: bytes, content_type: str, sha256: str) -> str:
    """Keep an input image, so an edit can be re-run and compared with its source later."""
    relative = Path(INPUTS) / (sha256[:32] + extension(content_type, data))
    if not (folder / relative).exists():
        _atomic_write(folder / relative, data)
    return relative.as_posix()


def find_input(folder: Path, sha256: str) -> Path | None:
    for path in (folder / INPUTS).glob(sha256[:32] + ".*"):
        return path
    return None


def inside(folder: Path, relative: str) -> Path:
    """The file a journal row names, refused unless it lies inside the runs folder (a row naming ../x, an
    absolute path or a link out of the folder is damage or tampering: nothing outside is ever read or deleted)."""
    root = folder.resolve()
    target = (root / relative).resolve()
    if not target.is_relative_to(root) or target == root:
        raise JournalError(f"the journal names a file outside its runs folder ({relative!r}): refused")
    return target


def grids_folder(folder: Path) -> Path:
    return folder / GRIDS


def input_identity(sha256: str | None, url: str | None) -> str:
    """How the journal remembers one input image: its hash (the file is kept) or its URL."""
    return sha256 if sha256 else URL_INPUT + (url or "")


def input_source(folder: Path, identity: str) -> Path | str | None:
    """An input the journal remembers: the kept file, the URL it was given as, or None when the file is gone."""
    if identity.startswith(URL_INPUT):
        return identity[len(URL_INPUT) :]
    return find_input(folder, identity)


def update_metadata(folder: Path, image_relative: str, changes: dict[str, Any]) -> None:
    """Merge ``changes`` into the metadata embedded in a result image (a None value removes that key).

    The file keeps its name (the hash of the bytes fal returned) and its pixels; only the metadata is rewritten.
    """
    from . import metadata

    path = inside(folder, image_relative)
    data = path.read_bytes()
    try:
        meta = metadata.read(data)
    except ValueError:  # a format metadata cannot go into
        return
    for key, value in changes.items():
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    _atomic_write(path, metadata.embed(data, meta))
