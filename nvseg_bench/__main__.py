"""`python -m nvseg_bench ...` is `nvseg-finetune ...`."""
from nvseg_bench.cli import main

raise SystemExit(main())
