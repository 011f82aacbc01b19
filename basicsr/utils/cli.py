"""One line per error for every command-line entry point.

Entry points end with ``sys.exit(run_cli(main))``. :func:`run_cli` runs ``main()`` and turns an exception
into a single line ``error: <message>`` on stderr (and into the training log when one is open):

* exit status 2 for a user mistake: a bad option or argument, a missing, corrupt or unreadable file, a
  shape mismatch, a checkpoint of another network (the toolbox's own error classes, listed in
  :data:`USER_ERRORS`, and the ``ValueError``/``TypeError`` the toolbox raises itself);
* exit status 1 for a runtime failure: the NaN-loss guard, a failed write, anything unexpected.

The traceback is printed only with ``--debug`` on the command line or ``BASICSR_DEBUG=1`` in the environment.
:class:`ArgumentParser` makes argparse's own errors (bad flag, bad value) one line as well;
:func:`discard_on_failure` removes an output folder that a failed command had just made (no partial output).
"""
from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import sys
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, NoReturn, Optional, Sequence, Tuple

USER_MISTAKE = 2
RUNTIME_FAILURE = 1
INTERRUPTED = 130
DEBUG_FLAG = '--debug'
DEBUG_ENV = 'BASICSR_DEBUG'

# the toolbox's error classes for user mistakes, by qualified name: nothing needs importing to recognise them
USER_ERRORS = (
    'basicsr.utils.options.OptionError',
    'basicsr.utils.registry.RegistryError',
    'basicsr.utils.img_util.ImageReadError',
    'basicsr.data.data_util.DataError',
    'basicsr.archs.pretrained.CheckpointMismatchError',
    'basicsr.inference.pipeline.InferenceOptionError',
    'basicsr.utils.serialization.RefusedPickleError',
    'basicsr.utils.serialization.UnreadableFileError',
    'basicsr.engine.run_guard.RunLockedError',  # a second trainer started on a run folder in use
)
# builtin errors that are a user mistake wherever they come from
USER_BUILTINS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError)
# what to do about an OSError that names a path the user gave
OS_ERROR_HINTS = {FileExistsError: 'a file is in the way of a folder: pass a folder path',
                  NotADirectoryError: 'a file is in the way of a folder: pass a folder path',
                  IsADirectoryError: 'a folder is given where a file is needed: pass a file path',
                  PermissionError: 'check the permissions of the file and its folder'}
# builtin errors that stop a run that was set up correctly
RUNTIME_BUILTINS = (FloatingPointError, OSError, MemoryError)
# builtin errors that carry a message written for the user when the toolbox raises them itself
TOOLBOX_MESSAGES = (ValueError, TypeError)
_PACKAGE_DIRS = (str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[2] / 'scripts'))


class UsageError(SystemExit):
    """A bad command-line argument: exits with status 2 (a ``SystemExit``, so argparse callers see one)."""

    exit_code = USER_MISTAKE

    def __init__(self, message: str) -> None:
        super().__init__(USER_MISTAKE)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors are one line (:class:`UsageError`) and that accepts ``--debug``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault('formatter_class', argparse.RawDescriptionHelpFormatter)
        kwargs.setdefault('conflict_handler', 'resolve')  # an entry point may redefine --debug (train.py's help)
        super().__init__(*args, **kwargs)
        self.add_argument(DEBUG_FLAG, action='store_true',
                          help=f'show the traceback of an error (also: {DEBUG_ENV}=1)')

    def error(self, message: str) -> NoReturn:
        raise UsageError(f'{self.prog}: {message} (see {self.prog} --help)')


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _int_at_least(text, 0)


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected an integer >= {low}, got {text!r}') from None
    if value < low:
        raise argparse.ArgumentTypeError(f'expected an integer >= {low}, got {value}')
    return value


def debug_requested(argv: Optional[Sequence[str]] = None) -> bool:
    """``--debug`` among the arguments or ``BASICSR_DEBUG=1`` in the environment."""
    args = sys.argv[1:] if argv is None else argv
    return DEBUG_FLAG in args or os.environ.get(DEBUG_ENV, '').strip().lower() in ('1', 'true', 'yes')


def _qualnames(exc: BaseException) -> List[str]:
    return [f'{cls.__module__}.{cls.__qualname__}' for cls in type(exc).__mro__]


def _raised_by_toolbox(exc: BaseException) -> bool:
    """Whether the innermost frame of ``exc`` is the toolbox's code (basicsr/ or scripts/), not a library's."""
    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and os.path.abspath(frames[-1].filename).startswith(_PACKAGE_DIRS)


def exit_code(exc: BaseException) -> int:
    """2 for a user mistake, 1 for a runtime failure (see the module docstring)."""
    code = getattr(exc, 'exit_code', None)
    if isinstance(code, int):
        return code
    if any(name in USER_ERRORS for name in _qualnames(exc)) or isinstance(exc, USER_BUILTINS):
        return USER_MISTAKE
    if isinstance(exc, RUNTIME_BUILTINS):
        return RUNTIME_FAILURE
    if isinstance(exc, TOOLBOX_MESSAGES) and _raised_by_toolbox(exc):
        return USER_MISTAKE
    return RUNTIME_FAILURE


def _expected(exc: BaseException) -> bool:
    """Whether ``exc`` is an error the toolbox reports on purpose (else: a bug or an unhandled case)."""
    if exit_code(exc) == USER_MISTAKE or isinstance(exc, RUNTIME_BUILTINS):
        return True
    if type(exc).__module__.split('.')[0] == 'basicsr':  # the toolbox's own classes (e.g. RunLockedError)
        return True
    return isinstance(exc, RuntimeError) and _raised_by_toolbox(exc)


def _without_worker_traceback(text: str) -> str:
    """The error's own message from a DataLoader worker's re-raised error, whose message carries the worker's
    traceback ('Caught X in DataLoader worker process N. Original Traceback ...: pkg.X: message')."""
    head, sep, original = text.partition('Original Traceback (most recent call last):')
    if not sep or not head.startswith('Caught '):
        return text
    lines = original.strip('\n').splitlines()
    last = max((i for i, line in enumerate(lines) if line and not line[0].isspace()), default=len(lines) - 1)
    message = '\n'.join(lines[last:])
    message = re.sub(r'^[A-Za-z_][\w.]*: ', '', message)  # drop the 'pkg.module.Class: ' prefix
    return f"{message} ({head.strip().rstrip('.')[len('Caught '):]})"


def error_line(exc: BaseException) -> str:
    """The one-line message for ``exc``: ``error: <message>`` (multi-line messages joined with '; ')."""
    if isinstance(exc, OSError) and exc.strerror:  # without '[Errno N]'; the file named once
        named = exc.filename is None or str(exc.filename) in exc.strerror
        text = exc.strerror if named else f'{exc.strerror}: {exc.filename}'
        hint = next((h for cls, h in OS_ERROR_HINTS.items() if isinstance(exc, cls)), None)
        text += f' ({hint})' if hint and exc.filename is not None else ''
    else:
        text = _without_worker_traceback(str(exc)) or type(exc).__name__
    parts = [re.sub(r'^- ', '', p.strip()) for p in text.splitlines()]
    text = ' '.join(parts[:1]) + ('' if len(parts) < 2 else ' ' + '; '.join(p for p in parts[1:] if p))
    text = text[len('error: '):] if text.startswith('error: ') else text
    if not _expected(exc):
        text = f'unexpected {type(exc).__name__}: {text} (rerun with {DEBUG_FLAG} or {DEBUG_ENV}=1 for the traceback)'
    if int(os.environ.get('WORLD_SIZE', '1') or 1) > 1:  # under torchrun: which process failed
        text = f"rank {os.environ.get('RANK', '?')}: {text}"
    return f'error: {text}'


def _log_to_files(line: str, details: str = '') -> None:
    """Write the error line (and the traceback, when shown) to the open log files of the 'basicsr' logger."""
    logger = logging.getLogger('basicsr')
    handlers = [h for h in logger.handlers if isinstance(h, logging.FileHandler)]
    if not handlers:
        return
    record = logger.makeRecord(logger.name, logging.ERROR, __file__, 0, line + details, None, None)
    for handler in handlers:
        handler.handle(record)


def report(exc: BaseException, debug: bool) -> int:
    """Print the one-line message of ``exc`` (with the traceback when ``debug``); returns the exit status."""
    line = error_line(exc)
    details = ''
    if debug:
        details = '\n' + ''.join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()
        print(details.lstrip('\n'), file=sys.stderr)
    print(line, file=sys.stderr)
    _log_to_files(line, details)
    return exit_code(exc)


def run_cli(main: Callable[..., Any], argv: Optional[Sequence[str]] = None) -> int:
    """Run ``main(argv)`` (``main()`` when ``argv`` is None) and return the process exit status.

    ``main`` returning an int uses it as the status; anything else is success (0).
    """
    debug = debug_requested(argv)
    sys.stderr.flush()
    try:
        result = main() if argv is None else main(list(argv))
    except UsageError as exc:
        return report(exc, debug)
    except SystemExit as exc:  # argparse --help, or an entry point exiting with a message or a status
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        return report(UsageError(str(exc.code)), debug)
    except KeyboardInterrupt:
        print('error: interrupted', file=sys.stderr)
        _log_to_files('error: interrupted')
        return INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - every error becomes one line; the traceback on request
        return report(exc, debug)
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


def result_or_exit(main: Callable[[List[str]], Any], argv: Sequence[str]) -> Any:
    """``main(argv)``'s result; on an error, its one line and ``sys.exit`` with the status (:func:`run_cli`).
    For entry points that other scripts call (BasicSR's ``train_pipeline(root_path)``)."""
    results: List[Any] = []
    code = run_cli(lambda args: results.append(main(args)), list(argv))
    if code:
        sys.exit(code)
    return results[0] if results else None


def option_file_args(description: str, argv: Optional[Sequence[str]] = None) -> Tuple[str, Dict[str, Any]]:
    """The command line ``-opt FILE [--set KEY=VALUE ...]`` of a script that evaluates on one test option file:
    the file's path and its parsed options (a bad option file is a :class:`UsageError`, exit status 2)."""
    from basicsr.utils.options import parse_options_or_exit
    parser = ArgumentParser(description=description)
    parser.add_argument('-opt', '--opt', required=True, help='test option YAML file')
    parser.add_argument('--set', nargs='*', action='extend', default=[], metavar='KEY=VALUE', help='override options')
    args = parser.parse_args(argv)
    return args.opt, parse_options_or_exit(args.opt, args.set, is_train=False)


@contextmanager
def discard_on_failure(folder: str | Path, enabled: bool = True,
                       keep: Optional[Callable[[Path], bool]] = None) -> Iterator[None]:
    """Remove ``folder`` again when the block fails and the folder did not exist before it (a command that fails
    leaves no partial output); an existing folder, or one for which ``keep(folder)`` is true, stays."""
    folder = Path(folder)
    existed = folder.exists()
    try:
        yield
    except BaseException:
        if enabled and not existed and folder.exists() and not (keep and keep(folder)):
            logger = logging.getLogger('basicsr')
            for handler in [h for h in logger.handlers if isinstance(h, logging.FileHandler)
                            and Path(h.baseFilename).is_relative_to(folder.resolve())]:
                logger.removeHandler(handler)
                handler.close()
            shutil.rmtree(folder, ignore_errors=True)
        raise


@contextmanager
def output_folder(folder: str | Path) -> Iterator[Path]:
    """Create ``folder`` (and missing parents) for the block; afterwards, whether the block failed or not, remove
    again the folders it created that hold no file, so a command that wrote nothing leaves no empty output folder.
    A folder that existed before stays."""
    folder = Path(folder)
    created = [p for p in (folder, *folder.parents) if not p.exists()]  # deepest first
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield folder
    finally:
        for path in created:
            try:
                path.rmdir()  # only an empty folder: anything written keeps it (and its parents)
            except OSError:
                break
