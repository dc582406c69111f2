"""`python -m ltx2_diffusers.cli` = `ltx2-diffusers`."""

import sys

from . import main

sys.exit(main())
