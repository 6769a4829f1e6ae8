"""A worker of ``wsrs serve``: ``python -m wsrs._worker``, started by the supervisor of
:mod:`wsrs.workers` with its configuration in the environment."""

import sys

from .workers import worker_main


if __name__ == "__main__":
    sys.exit(worker_main())
