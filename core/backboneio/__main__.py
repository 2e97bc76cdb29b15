from backboneio.cli import main

raise SystemExit(main())
