import sys

from collabgate.client.cli import main

sys.exit(main())
