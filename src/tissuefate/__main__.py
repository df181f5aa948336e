import sys

from tissuefate.cli import main

sys.exit(main())
