"""The pytest harness: finetune runs as cached, parametrized session fixtures, and gate items.

`plugin` holds the hooks (registered through the `pytest11` entry point), `options` reads the
command line, environment and ini file, `runs` builds and executes the CLI invocation of each run,
`cache` keys and stores finished runs, `gates` judges a run's evidence, `gate_items` is the test
module that turns gates into items, and `report`/`plots` write what CI shows a person.
Nothing here trains or imports monai: every run is a `python -m nvseg_bench` subprocess.
"""
