"""How a long command shows its progress: a bar on a terminal, a few lines in a log.

On a terminal each stage of a command (ingest, tokenize, encode, train) shows a bar that
redraws in place. Into a file or a pipe, such as a batch job's log, a bar would leave a
line per redraw; there a stage prints at most one line per tenth of its work, or, while
its total is unknown (ingest's first pass), one each time the count has doubled, and a
last line with the count when it ends. ``quack ingest``, ``quack encode`` and
``quack fit`` all report through :class:`Progress`.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import IO

__all__ = ["Progress", "Stages", "STOP"]

#: Set when the process is asked to stop (SIGTERM). The signal's own KeyboardInterrupt
#: can land where Python ignores it (inside a finaliser), so every progress report
#: checks this too and stops the work at the next step.
STOP = threading.Event()


class Progress:
    """The progress of one stage of a command.

    Parameters
    ----------
    command : str
        What prefixes a log line, such as ``"quack ingest"``.
    stage : str
        The stage's name, such as ``"tokenize"``.
    total : int, optional
        The work of the stage, when known.
    unit : str
        What is counted, plural (``"rows"``, ``"steps"``).
    stream : file, optional
        Where to write; standard error by default.
    terminal : bool, optional
        Draw a bar (True) or print lines (False); by default, a bar when ``stream`` is a
        terminal.
    """

    def __init__(
        self,
        command: str,
        stage: str,
        total: int | None = None,
        unit: str = "rows",
        stream: IO[str] | None = None,
        terminal: bool | None = None,
    ) -> None:
        self.command, self.stage, self.total, self.unit = command, stage, total, unit
        self.stream = stream if stream is not None else sys.stderr
        if terminal is None:
            terminal = bool(getattr(self.stream, "isatty", lambda: False)())
        self.done = 0
        self._start = time.monotonic()
        self._said = 0
        self._tenth = 0
        self._bar = None
        if terminal:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=stage, unit=f" {unit}", file=self.stream, leave=False)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def update(self, done: int, total: int | None = None) -> None:
        """Say that ``done`` units of the stage are done (of ``total``, when it becomes known).

        Raises
        ------
        KeyboardInterrupt
            Once :data:`STOP` is set.
        """
        if STOP.is_set():
            raise KeyboardInterrupt
        if total is not None:
            self.total = total
        self.done = done
        if self._bar is not None:
            if self._bar.total != self.total:
                self._bar.total = self.total
            self._bar.update(done - self._bar.n)
            return
        if self.total:
            tenth = min(10, done * 10 // self.total)
            if tenth > self._tenth:
                self._tenth = tenth
                self._say(f"{tenth * 10}%", f"{done:,} of {self.total:,} {self.unit}, ")
        elif done > 0 and done >= 2 * self._said:
            self._say(f"{done:,} {self.unit}")

    def close(self) -> None:
        """End the stage: remove the bar, or print the count reached if no line said it."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif not self.total and self.done and self._said != self.done:
            self._say(f"{self.done:,} {self.unit}, done")

    def _say(self, head: str, detail: str = "") -> None:
        self._said = self.done
        elapsed = time.monotonic() - self._start
        print(f"{self.command}: {self.stage} {head} ({detail}{elapsed:.1f} s)", file=self.stream, flush=True)


class Stages:
    """Progress through named stages in turn, each a :class:`Progress`; call it as ``stages(done, stage)``.

    A new stage closes the one before. A stage named in ``totals_from`` takes as its
    total the count the named earlier stage reached (tokenizing counts ingest's rows).

    Parameters
    ----------
    command : str
        As for :class:`Progress`.
    totals_from : dict, optional
        ``{stage: earlier stage}``.
    **options
        ``unit``, ``stream``, ``terminal`` as for :class:`Progress`.
    """

    def __init__(self, command: str, totals_from: dict[str, str] | None = None, **options) -> None:
        self.command = command
        self.totals_from = totals_from or {}
        self.options = options
        self.current: Progress | None = None
        self.reached: dict[str, int] = {}

    def __enter__(self) -> "Stages":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __call__(self, done: int, stage: str, total: int | None = None) -> None:
        if self.current is None or self.current.stage != stage:
            self.close()
            if total is None and stage in self.totals_from:
                total = self.reached.get(self.totals_from[stage])
            self.current = Progress(self.command, stage, total, **self.options)
        self.reached[stage] = done
        self.current.update(done, total)

    def close(self) -> None:
        """End the current stage."""
        if self.current is not None:
            self.current.close()
            self.current = None
