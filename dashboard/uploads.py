"""What a browser's uploads may hold in the server's memory, and how they reach disk.

Streamlit keeps every file a session uploads in memory until the session ends. The
dashboard bounds that: each file by ``server.maxUploadSize`` (``.streamlit/config.toml``),
one upload by :data:`MAX_FILES` files and :data:`MAX_BATCH_BYTES` bytes, refused at once
(their memory given back) past either; a file is copied to disk a chunk at a time, never
as one more copy in memory, and Streamlit's copy is dropped once the file is on disk.
"""

from __future__ import annotations

import hashlib
from typing import IO, Iterable, Iterator, Union

#: Files one upload may hold.
MAX_FILES = 4
#: Bytes one upload's files may hold together.
MAX_BATCH_BYTES = 1_000_000_000
#: Bytes read and written at a time.
CHUNK_BYTES = 1 << 20

#: An upload's content: bytes, or a file object read from its start (Streamlit's UploadedFile).
Content = Union[bytes, IO[bytes]]


def size_of(data: Content) -> int:
    """Bytes in an upload's content."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return len(data)
    position = data.tell()
    end = data.seek(0, 2)
    data.seek(position)
    return end


def chunks(data: Content) -> Iterator[bytes]:
    """An upload's content a chunk at a time, from its start, without copying it whole."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        view = memoryview(data)
        for start in range(0, len(view), CHUNK_BYTES):
            yield bytes(view[start : start + CHUNK_BYTES])
        return
    data.seek(0)
    while chunk := data.read(CHUNK_BYTES):
        yield chunk


def digest(data: Content) -> str:
    """A short name for an upload's content (SHA-1), read a chunk at a time."""
    named = hashlib.sha1()
    for chunk in chunks(data):
        named.update(chunk)
    return named.hexdigest()


def check_batch(files: Iterable[tuple[str, Content]]) -> None:
    """Refuse an upload of more files or bytes than one upload may hold.

    Raises
    ------
    ValueError
        One sentence saying which bound was passed and what to do.
    """
    files = list(files)
    if len(files) > MAX_FILES:
        raise ValueError(f"{len(files)} files were uploaded at once; upload at most {MAX_FILES} at a time, "
                         "or put larger collections in a folder this server shares.")
    total = sum(size_of(data) for _, data in files)
    if total > MAX_BATCH_BYTES:
        raise ValueError(f"The uploaded files hold {total / 1e6:,.0f} MB together, more than the "
                         f"{MAX_BATCH_BYTES / 1e6:,.0f} MB one upload may hold; upload fewer at a time.")


def release(files: Iterable) -> None:
    """Give back the memory Streamlit holds for a session's uploaded files (no-op outside a server)."""
    from streamlit.runtime import Runtime
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx(suppress_warning=True)
    if ctx is None or not Runtime.exists():
        return
    manager = Runtime.instance().uploaded_file_mgr
    for uploaded in files:
        file_id = getattr(uploaded, "file_id", None)
        if file_id is not None:
            manager.remove_file(ctx.session_id, file_id)
