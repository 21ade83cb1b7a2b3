import sys

from filterdns.cli import main

sys.exit(main())
