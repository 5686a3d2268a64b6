"""The `rag` command line: one module per command group, wired in :mod:`rag.cli.app`.

Exit codes: 0 everything landed; 1 some files failed (the rest landed) or a check found
problems; 2 usage errors (bad arguments, unknown knowledge base, bad settings); 3 the
environment is at fault (catalog unreachable, model missing, lock held too long).
"""

from rag.cli.app import app, run
from rag.cli.common import EXIT_ENVIRONMENT, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE

__all__ = ["EXIT_ENVIRONMENT", "EXIT_OK", "EXIT_PARTIAL", "EXIT_USAGE", "app", "run"]
