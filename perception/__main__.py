import sys

from perception.cli import main

sys.exit(main())
