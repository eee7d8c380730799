"""``python -m topologies.scenarios NAME``: run one scenario."""

from topologies.scenarios import main

raise SystemExit(main())
