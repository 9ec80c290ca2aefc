"""The pytest harness: finetune runs as cached, parametrized session fixtures, and gate items.

`plugin` holds the hooks (registered through the `pytest11` entry point), `options` reads the
command line, environment and ini file, `runs` builds and starts the CLI invocation of each run,
`cache` keys and stores finished runs, `broker` hands them out, `trust` has the verifier judge a
pack (trusted mode), `gates` judges a run's evidence, `gate_items` is the test module that turns
gates into items, `ledger` gathers their outcomes, `finish` writes them into output.json,
`summary` prints the terminal table, and `report`/`plots` write what CI shows a person.
Nothing here trains or imports monai: every run is a `python -m nvseg_bench` subprocess, and the
verifier a `python -m eval_engine.run_trusted` one.
"""
