"""Send a job's output to its log file; on failure, one line on the console, the traceback in the log.

A rule script wraps its work in :func:`log_to`. When the work raises, the full traceback
goes to the job's log and the console (the real stderr, which Snakemake shows) gets one line

    <rule> <wildcards>: <ExceptionType>: <message> (full traceback in <log>)

before the exception propagates (the job still fails). Inside a rule script the
interpreter's own traceback printout is then suppressed, so the console is not flooded
with the traceback that the log already holds.
"""

from __future__ import annotations

import contextlib
import sys
import traceback
from pathlib import Path

_consoles: list = []  # the real stderr of each active log_to, innermost last


def current_job():
    """The ``snakemake`` object of the running rule script, or None outside one."""
    return getattr(sys.modules.get("__main__"), "snakemake", None)


def job_label(job=None) -> str:
    """'<rule> <name>=<value> ...' for a Snakemake job (its rule name alone when it has no wildcards)."""
    job = job if job is not None else current_job()
    if job is None:
        return "job"
    label = str(getattr(job, "rule", None) or "job")
    wildcards = getattr(job, "wildcards", None)
    items = list(wildcards.items()) if hasattr(wildcards, "items") else []
    return " ".join([label] + [f"{name}={value}" for name, value in items])


def one_line(text) -> str:
    """A message on one line: its lines joined by spaces."""
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def console_line(error: BaseException, log_path, job=None) -> str:
    """The console line of a failed job."""
    return f"{job_label(job)}: {type(error).__name__}: {one_line(error)} (full traceback in {log_path})"


def console(message: str) -> None:
    """Print ``message`` on the console (the real stderr), also from inside :func:`log_to`."""
    stream = _consoles[-1] if _consoles else sys.__stderr__
    if stream is not None:
        print(message, file=stream, flush=True)


def warn(message: str, log=None) -> None:
    """A warning that must not stay buried in a log: one line on the console (and in ``log``)."""
    line = f"{job_label()}: warning: {one_line(message)}"
    if log is not None:
        print(line, file=log, flush=True)
    console(line)


@contextlib.contextmanager
def log_to(path, job=None):
    """Redirect stdout and stderr into ``path``; on an error, its traceback goes there and one line to the console.

    ``job``: the Snakemake job object naming rule and wildcards in that line (default: the
    ``snakemake`` object of the running rule script).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    job = job if job is not None else current_job()
    with open(path, "w", buffering=1) as handle:
        old = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = handle
        _consoles.append(old[1])
        try:
            yield handle
        except BaseException as error:
            traceback.print_exc(file=handle)
            if isinstance(error, Exception):
                line = console_line(error, path, job)
                print(line, file=handle, flush=True)
                print(line, file=old[1], flush=True)
                if job is not None and job is current_job():
                    _quiet_traceback(error)
            raise
        finally:
            _consoles.pop()
            sys.stdout, sys.stderr = old


def _quiet_traceback(error: BaseException) -> None:
    """Let ``error`` end the rule script without printing its traceback again (the log has it)."""
    previous = sys.excepthook

    def hook(kind, value, tb):
        if value is not error:
            previous(kind, value, tb)

    sys.excepthook = hook
