"""Allow ``python -m bot`` as an alias of the ``bot`` console script."""

from bot.cli.main import main

raise SystemExit(main())
