"""`python -m paper_repro.sweep experiments/X.yaml [...]`: the sweep command without the full CLI."""
import sys

from paper_repro.sweep.launch import main

sys.exit(main())
