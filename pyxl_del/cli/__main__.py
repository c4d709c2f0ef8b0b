"""`python -m pyxl_del.cli`: the same as the `pyxl-del` command."""

import sys

from pyxl_del.cli import main

sys.exit(main())
