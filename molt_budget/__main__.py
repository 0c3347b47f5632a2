from molt_budget.cli import main

raise SystemExit(main())
