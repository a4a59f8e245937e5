"""python -m cakemail_gateway: the CLI."""

import sys

from cakemail_gateway.cli import main

sys.exit(main())
