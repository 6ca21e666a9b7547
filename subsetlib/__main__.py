from subsetlib.cli import main

raise SystemExit(main())
