"""`python -m nvseg_bench ...` is `nvseg-finetune ...`."""
from .cli import main

raise SystemExit(main())
