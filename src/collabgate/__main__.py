import sys

from collabgate.cli.main import main

sys.exit(main())
