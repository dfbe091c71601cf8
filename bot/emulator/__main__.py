import sys

from bot.emulator.cli import main

sys.exit(main())
