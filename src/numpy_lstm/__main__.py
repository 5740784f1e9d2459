"""`python -m numpy_lstm …` runs the same command line as `numpy-lstm …`."""

from .cli.main import main

raise SystemExit(main())
