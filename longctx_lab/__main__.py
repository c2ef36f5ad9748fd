"""``python -m longctx_lab``: the ``longctx-lab`` command (:func:`longctx_lab.cli.main`)."""

import sys

from longctx_lab.cli import main

if __name__ == "__main__":
    sys.exit(main())
