"""One-line errors for users: the CLI prints them and exits non-zero, never a traceback."""
import re
import sys

import tensorflow as tf
from absl import app


class UserError(Exception):
  """A problem the user can fix (bad file, bad flag, missing model): says what and how."""


def run(main):
  """Like `absl.app.run(main)`, but a `UserError` becomes `error: ...` on stderr, exit 2.

  A lost multi-worker peer becomes one line too (exit 3), saying how to resume.
  """

  def guarded(argv):
    try:
      return main(argv)
    except UserError as e:
      print(f"error: {e}", file=sys.stderr)
      sys.exit(2)
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError) as e:
      # A multi-worker peer died or cannot be reached: collectives cannot go on.
      reason = " ".join(re.sub(r"\{\{.*?\}\}|\[Op:.*", "", str(e), flags=re.S).split())[:160]
      print(f"error: a worker of the cluster is unreachable ({reason}): restart every "
            "worker with the same command; training resumes from the last checkpoint",
            file=sys.stderr)
      sys.exit(3)
    except KeyboardInterrupt:
      print("interrupted: the last checkpoint is kept; run the same command to resume",
            file=sys.stderr)
      sys.exit(130)

  app.run(guarded)
