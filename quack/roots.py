"""The served dashboard's trust boundary for paths typed in a browser.

Whoever can open the dashboard can type a path, so a typed path is read only when it
lies inside one of the folders the operator shares (:class:`Roots`, set by
``QUACK_DATA_ROOTS``), after ``..`` and symbolic links are resolved. Every refusal is the
same sentence whether or not the path exists, so the dashboard cannot be used to probe
the server's files. What the browser names for writing is a plain name, never a path
(:func:`resolve_writable_name`), placed in a folder the server chose. Error texts shown
in a browser go through :meth:`Roots.public_message`, which hides server paths outside
the shared folders.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable, Mapping

__all__ = ["ENVIRONMENT_VARIABLE", "Roots", "resolve_writable_name"]

#: The environment variable listing the shared folders, separated by ``os.pathsep``.
ENVIRONMENT_VARIABLE = "QUACK_DATA_ROOTS"

#: Stands in for a server path outside the shared folders in a message.
HIDDEN_PATH = "[server path]"

_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")

# In a message: a URL (kept unless it is a file URL), or an absolute path, quoted (spaces
# allowed) or bare up to a space or bracket.
_PATH_IN_TEXT = re.compile(
    r"""(?P<url>\b(?!file:)[A-Za-z][A-Za-z0-9+.-]*://[^\s'"<>]*)"""
    r"""|(?P<quote>['"])(?P<quoted>(?:file://)?(?:~|/|[A-Za-z]:[\\/])[^'"\n]*)(?P=quote)"""
    r"""|(?<![\w.\\~/-])(?P<bare>(?:file://)?(?:(?:~[\w.-]*)?/[^\s'"<>|,;()\[\]{}]+|~"""
    r"""|[A-Za-z]:[\\/][^\s'"<>|,;()\[\]{}]*))"""
)


class Roots:
    """The folders whose files and subfolders a browser may have the server read.

    Parameters
    ----------
    folders : iterable of str or os.PathLike
        Absolute folders (``~`` is expanded). They need not exist yet: a cache folder is
        made on first use.

    Raises
    ------
    ValueError
        When no folder is given or one is not absolute.
    """

    def __init__(self, folders: Iterable[str | os.PathLike]) -> None:
        given = [Path(folder).expanduser() for folder in folders]
        if not given:
            raise ValueError(f"No data folder is shared; set {ENVIRONMENT_VARIABLE} to one or more absolute folders.")
        for folder in given:
            if not folder.is_absolute():
                raise ValueError(
                    f"The shared data folder {str(folder)!r} is not an absolute path; "
                    f"give absolute folders in {ENVIRONMENT_VARIABLE}, separated by {os.pathsep!r}."
                )
        self.folders = tuple(dict.fromkeys(given))

    @classmethod
    def from_environment(cls, defaults: Iterable[str | os.PathLike],
                         environ: Mapping[str, str] | None = None) -> "Roots":
        """The folders named by ``QUACK_DATA_ROOTS``, or ``defaults`` when it is unset or empty.

        Parameters
        ----------
        defaults : iterable of str or os.PathLike
            The folders shared when the variable is not set, typically the dashboard's
            cache folder and its checkpoint folder.
        environ : mapping, optional
            The environment; ``os.environ`` by default.
        """
        value = (os.environ if environ is None else environ).get(ENVIRONMENT_VARIABLE, "")
        named = [part for part in value.split(os.pathsep) if part.strip()]
        return cls(named or defaults)

    def __repr__(self) -> str:
        return f"Roots({[str(folder) for folder in self.folders]!r})"

    def _real_folders(self) -> list[Path]:
        # Resolved at each use: a folder made after start-up, or moved, is judged as it is now.
        return [folder.resolve() for folder in self.folders]

    def contains(self, path: str | os.PathLike) -> bool:
        """Whether ``path``, with ``..`` and links resolved, lies inside a shared folder."""
        try:
            real = Path(path).expanduser().resolve()
        except (OSError, RuntimeError, ValueError):
            return False
        return any(real.is_relative_to(folder) for folder in self._real_folders())

    def resolve_readable(self, user_text: str | os.PathLike) -> Path:
        """The real path of an existing file or folder inside a shared folder.

        A relative path is looked for in each shared folder in turn. Links and ``..`` are
        resolved before the check, so neither leads out of the shared folders; nor does a
        link inside the folder found (:meth:`check_links`).

        Parameters
        ----------
        user_text : str or os.PathLike
            A path as typed in a browser; surrounding spaces are ignored.

        Returns
        -------
        pathlib.Path
            The resolved path: open this one, not the text.

        Raises
        ------
        ValueError
            The same sentence whether the path is outside, missing, unreadable or not a
            path at all, naming only the shared folders; or one naming a link under the
            folder that leads outside.
        """
        text = os.fspath(user_text) if isinstance(user_text, os.PathLike) else user_text
        if not isinstance(text, str) or not text.strip() or "\x00" in text:
            raise self._refusal()
        try:
            typed = Path(text.strip()).expanduser()
        except RuntimeError:  # ~user naming no one
            raise self._refusal() from None
        candidates = [typed] if typed.is_absolute() else [folder / typed for folder in self.folders]
        folders = self._real_folders()
        for candidate in candidates:
            try:
                real = candidate.resolve(strict=True)
            except (OSError, RuntimeError, ValueError):
                continue
            if any(real.is_relative_to(folder) for folder in folders):
                self.check_links(real)
                return real
        raise self._refusal()

    def check_links(self, path: str | os.PathLike) -> None:
        """Refuse a folder that holds, at any depth, a link leading outside the shared folders.

        A folder inside a shared folder is read file by file (a data set's three files,
        its parts, an encoded folder's shards, raw files), so each link under it is
        resolved, and links to folders inside are followed in turn (each folder once).

        Parameters
        ----------
        path : str or os.PathLike
            A real path inside a shared folder; a file has nothing under it.

        Raises
        ------
        ValueError
            Naming the first such link (it lies inside a shared folder) and what to do.
        """
        folders = self._real_folders()
        waiting, seen = [Path(path)], set()
        while waiting:
            folder = waiting.pop()
            if folder in seen:
                continue
            seen.add(folder)
            try:
                entries = list(os.scandir(folder))
            except (NotADirectoryError, FileNotFoundError):
                continue
            except OSError:
                raise self._refusal() from None
            for entry in entries:
                if entry.is_symlink():
                    try:
                        real = Path(entry.path).resolve()
                    except (OSError, RuntimeError):
                        real = None
                    if real is None or not any(real.is_relative_to(shared) for shared in folders):
                        raise ValueError(
                            f"{entry.path} is a link that leads outside the folders this server shares; replace it "
                            f"with what it links to, or share that folder too ({ENVIRONMENT_VARIABLE})."
                        )
                    if real.is_dir():
                        waiting.append(real)
                elif entry.is_dir(follow_symlinks=False):
                    waiting.append(Path(entry.path))

    def _refusal(self) -> ValueError:
        shared = " or ".join(str(folder) for folder in self.folders)
        return ValueError(
            f"That path is not a file or folder this server shares; give one inside {shared} "
            f"(the folders set by {ENVIRONMENT_VARIABLE})."
        )

    def public_message(self, error: BaseException | str) -> str:
        """An error's text fit for a browser: server paths outside the shared folders hidden.

        Absolute paths (quoted ones may hold spaces) inside a shared folder are kept;
        others become ``[server path]``. Relative paths cannot be told from words and are
        kept, so a message should name files by absolute path.
        """
        folders = [Path(os.path.normpath(folder)) for folder in self.folders] + self._real_folders()

        def shown(path: str) -> str:
            plain = path[len("file://"):] if path.startswith("file://") else path
            lexical = Path(os.path.normpath(os.path.expanduser(plain)))
            inside = lexical.is_absolute() and any(lexical.is_relative_to(folder) for folder in folders)
            return path if inside else HIDDEN_PATH

        def replace(match: re.Match) -> str:
            if match.group("url") is not None:
                return match.group("url")
            if match.group("quoted") is not None:
                return match.group("quote") + shown(match.group("quoted")) + match.group("quote")
            bare = match.group("bare")
            # A sentence's own full stop or colon is not part of the path before it.
            path = bare.rstrip(".,:;!?")
            return shown(path) + bare[len(path):]

        return _PATH_IN_TEXT.sub(replace, str(error))


def resolve_writable_name(folder: str | os.PathLike, name: str, what: str = "the name") -> Path:
    """``folder / name`` for a plain name typed in a browser, such as an export or fingerprint file.

    Parameters
    ----------
    folder : str or os.PathLike
        A folder the server chose; the browser never names it.
    name : str
        Up to 128 ASCII letters, digits, ``.``, ``_`` and ``-``, not starting with a dot:
        no separators, no ``..``, no hidden files.
    what : str
        What the name is for, as the message should call it (``"the export folder's name"``).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ValueError
        One sentence naming the refused name, when it is not such a name or when a link
        of that name already stands in ``folder`` (writing would follow it).
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"{name!r} cannot be used as {what}: use up to 128 ASCII letters, digits, '.', '_' and '-', "
            "not starting with a dot."
        )
    target = Path(folder) / name
    if target.is_symlink():
        raise ValueError(f"{name!r} cannot be used as {what}: a link of that name is already there; choose another.")
    return target
