"""Near-identical responses as one template: the key that collapses a candidate list.

A blockpage is one template served again and again, with small differences per request:
the blocked domain or URL, a request id, a timestamp, the client's address, a length.
:func:`template_key` normalises those parts away (numbers, long hexadecimal runs, domain
names and addresses, whitespace) and hashes what is left, so every copy of one template
gets one key while pages that differ in their words keep theirs apart. The key reads the
status line and the body; headers (``Date``, ``Content-Length``, cookies) vary per request
and are left out.
"""

from __future__ import annotations

import hashlib
import re
from typing import Iterable

import numpy as np

__all__ = ["normalise", "template_key", "template_keys"]

#: Characters of a body the key reads: a template differs from another early on, and a
#: bound keeps the key of a long page cheap.
KEY_CHARS = 8192

# Order matters: URLs and addresses before the bare numbers they contain.
_URL = re.compile(r"\b(?:https?|ftp)://[^\s\"'<>]*", re.IGNORECASE)
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_IPV4 = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b")
_DOMAIN = re.compile(r"\b(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,24}\b", re.IGNORECASE)
_HEX = re.compile(r"\b(?=[0-9a-f]*\d)[0-9a-f]{8,}\b", re.IGNORECASE)
_NUMBER = re.compile(r"\d+")
_SPACE = re.compile(r"\s+")


def normalise(status: str | None, body: str | None) -> str:
    """The text of a response with its per-request parts replaced by placeholders.

    Parameters
    ----------
    status : str or None
        The status line (``403 Forbidden``); a missing one reads as empty.
    body : str or None
        The body (for echo and discard, the received string).

    Returns
    -------
    str
        URLs become ``<url>``, e-mail addresses ``<mail>``, IPv4 addresses ``<ip>``, domain
        names ``<domain>``, hexadecimal runs of eight or more ``<hex>``, other digit runs
        ``0``; runs of white space one space; letters lower case.
    """
    text = f"{status or ''}\n{(body or '')[:KEY_CHARS]}"
    text = _URL.sub("<url>", text)
    text = _EMAIL.sub("<mail>", text)
    text = _IPV4.sub("<ip>", text)
    text = _DOMAIN.sub("<domain>", text)
    text = _HEX.sub("<hex>", text)
    text = _NUMBER.sub("0", text)
    return _SPACE.sub(" ", text).strip().lower()


def template_key(status: str | None, body: str | None) -> str:
    """A short hash of :func:`normalise`: equal for the copies of one template.

    Returns
    -------
    str
        16 hexadecimal characters.
    """
    return hashlib.blake2b(normalise(status, body).encode("utf-8"), digest_size=8).hexdigest()


def template_keys(statuses: Iterable[str | None], bodies: Iterable[str | None]) -> np.ndarray:
    """:func:`template_key` of each row, as an object array in row order."""
    return np.array([template_key(status, body) for status, body in zip(statuses, bodies)], dtype=object)
