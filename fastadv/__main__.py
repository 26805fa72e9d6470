"""``python -m fastadv`` runs the command line."""
import sys

from fastadv.cli import main

sys.exit(main())
