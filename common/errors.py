"""One-line errors for users: the CLI prints them and exits non-zero, never a traceback."""
import sys

from absl import app


class UserError(Exception):
  """A problem the user can fix (bad file, bad flag, missing model): says what and how."""


def run(main):
  """Like `absl.app.run(main)`, but a `UserError` becomes `error: ...` on stderr, exit 2."""

  def guarded(argv):
    try:
      return main(argv)
    except UserError as e:
      print(f"error: {e}", file=sys.stderr)
      sys.exit(2)
    except KeyboardInterrupt:
      print("interrupted: the last checkpoint is kept; run the same command to resume",
            file=sys.stderr)
      sys.exit(130)

  app.run(guarded)
