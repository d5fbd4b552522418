"""``python -m thor_gateway``: the same as the ``thor-gateway`` command."""

import sys

from thor_gateway.serving.cli import main

if __name__ == "__main__":
    sys.exit(main())
