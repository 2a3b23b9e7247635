import sys

from progressive_sae.cli import main

sys.exit(main())
