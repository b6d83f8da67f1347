"""What a browser is told when something fails: one sentence, no server path outside the shared folders.

Every error a page shows goes through :func:`show`, so the text is passed through
:meth:`quack.roots.Roots.public_message` (server paths outside ``QUACK_DATA_ROOTS``
become ``[server path]``) and escaped as Markdown (a file name or pattern in it reads as
typed).
"""

from __future__ import annotations

import streamlit as st

from dashboard import charts, settings
from quack.roots import Roots


def public(error: BaseException | str) -> str:
    """An error's text fit for a browser: paths outside the shared folders hidden."""
    try:
        roots = settings.data_roots()
    except ValueError:
        # A misconfigured QUACK_DATA_ROOTS is itself reported elsewhere; hide paths
        # against the folders shared by default meanwhile.
        roots = Roots(settings.own_folders())
    return roots.public_message(error)


def show(error: BaseException | str, where=st) -> None:
    """Show an error as one red box on ``where`` (the page, or a column or container)."""
    where.error(charts.markdown_text(public(error)))
