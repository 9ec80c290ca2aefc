"""The pytest harness: finetune runs as cached, parametrized session fixtures, and gate items.

By feature, as pytest's `_pytest/` is: `plugin` holds the hooks (registered through the `pytest11`
entry point), `options` reads the runs' own settings, `runs` builds and starts the CLI invocation of
each run, `cache` keys and stores finished runs, `broker` hands them out, `trust` runs the verifier on
a pack. Each gate feature is one module that owns its options, gates, terminal lines and report
parts (`feature.Feature`): `core_gates`, `significance`, `forgetting`, `trusted_gate`, `baseline`,
registered in the table in `gates`; `report` is the feature that draws on them. `gate_items` is the
test module that turns gates into items, `ledger` gathers their outcomes, `finish` writes them into
output.json and runs each feature's end step, and `summary` prints the terminal table.
Nothing here trains or imports monai: every run is a `python -m nvseg_bench` subprocess, and the
verifier a `python -m eval_engine.run_trusted` one.
"""
