"""The errors a user can cause, and how a command reports them.

Every class here is a `UserFacingError`: the input, config, file or workdir
it names can be fixed by the user, and a command (launch/*.py) ends on it
with one line `error: <file or value>: <what is wrong>` on stderr and exit
status 2 (`cli_main`). A traceback is shown only with --debug or `-v 1`.

Some modules name the class they raise under a local alias
(evaluate.EvaluationError, generate.GenerateError,
checkpointing.CheckpointMismatchError, ...); each is the class here.
"""

import functools
import sys
from typing import Any, Callable

# The fixed set of reasons a media file can be rejected for (MediaError).
MEDIA_REASONS = ("empty", "undecodable", "no_frames", "no_audio",
                 "non_finite", "too_short", "silent", "not_a_file")
EXIT_USER_ERROR = 2


class UserFacingError(Exception):
  """A problem the user can fix (bad data dir, mismatched export, NaN...)."""


class ConfigError(UserFacingError, ValueError):
  """A config value that cannot work; str() names the key and the value."""


class AugmentConfigError(ConfigError):
  """A bad `visual.augment` value; the message names the key and value."""


class LaunchError(UserFacingError, ValueError):
  """A problem with the user's sweep or command; the message says what."""


class EvaluationError(UserFacingError):
  """Bad input to the evaluation (missing export, judges, unknown split)."""


class RobustnessSetError(UserFacingError, ValueError):
  """Bad input to the robustness set maker; the message names the value or
  file."""


class CheckpointMismatchError(UserFacingError, ValueError):
  """A saved tree does not have the structure/shapes the model expects."""


class DamagedCheckpointError(UserFacingError):
  """A checkpoint or export on disk cannot be read (cut off, half deleted)."""


class NonFiniteError(UserFacingError, FloatingPointError):
  """A train step produced NaN or inf; nothing from it was saved."""


class WorkdirLockedError(UserFacingError):
  """Another live process holds the workdir's lock."""


class WorkdirConfigError(UserFacingError):
  """A rerun's resolved config differs from the one the workdir holds."""


class SourceChangedError(UserFacingError):
  """Prepared folder data was built from another folder (or other files)."""


class PathError(UserFacingError):
  """A file the user gave; str() is '<file>: <what>'."""

  def __init__(self, path: Any, message: str):
    self.path = str(path)
    self.message = message
    super().__init__(f"{self.path}: {message}")


class GenerateError(PathError):
  """A problem with a file or value given to generate."""


class MediaError(UserFacingError, ValueError):
  """A media file that cannot be used; `reason` is one of MEDIA_REASONS."""

  def __init__(self, path: Any, reason: str, detail: str = ""):
    if reason not in MEDIA_REASONS:
      raise ValueError(f"unknown media error reason {reason!r}")
    self.path = str(path)
    self.reason = reason
    self.detail = detail
    message = f"{self.path}: {reason}"
    super().__init__(f"{message} ({detail})" if detail else message)


# OS errors a user causes with a path (missing, a folder, no permission...).
USER_OS_ERRORS = (FileNotFoundError, NotADirectoryError, IsADirectoryError,
                  PermissionError, FileExistsError)


def describe(error: BaseException) -> str:
  """'<file or value>: <what is wrong>' for an error a user can fix."""
  if isinstance(error, OSError) and error.filename is not None:
    return f"{error.filename}: {error.strerror or error}"
  return str(error)


def is_user_error(error: BaseException) -> bool:
  """Whether `error` is one a user causes (and gets one line for)."""
  if isinstance(error, UserFacingError):
    return True
  if isinstance(error, USER_OS_ERRORS):
    return True
  # A read-only or full disk: the path is the user's to fix.
  return isinstance(error, OSError) and error.errno in (28, 30)


def _debugging() -> bool:
  """--debug given, or absl verbosity >= 1 (`-v 1`)."""
  try:
    from absl import flags  # pylint: disable=g-import-not-at-top
    values = flags.FLAGS
    if "debug" in values and values["debug"].value:
      return True
    return bool(values.is_parsed() and values["verbosity"].value >= 1)
  except Exception:  # pylint: disable=broad-except
    return False


def define_debug_flag() -> None:
  """Defines --debug (a traceback instead of the one-line error) once."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  if "debug" not in flags.FLAGS:
    flags.DEFINE_bool("debug", False, "On a bad input, raise with the full "
                      "traceback instead of printing one line.")


def print_error(error: BaseException) -> None:
  print(f"error: {describe(error)}", file=sys.stderr, flush=True)


def cli_main(main: Callable[[list], Any]) -> Callable[[list], Any]:
  """Wraps a command's main: a user error prints one line and exits 2.

  Other exceptions (bugs) keep their traceback; with --debug or `-v 1` user
  errors do too.
  """
  @functools.wraps(main)
  def wrapped(argv):
    try:
      return main(argv)
    except Exception as error:  # pylint: disable=broad-except
      if not is_user_error(error) or _debugging():
        raise
      print_error(error)
      sys.exit(EXIT_USER_ERROR)
  return wrapped
