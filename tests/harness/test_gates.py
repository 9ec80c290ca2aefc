"""The gate items for every run the session selects (`pytest -m smoke`, `-m sanity --gpu`, `-m user`).

Importing the names is how any project collects them; the plugin never adds items by itself.
"""
from nvseg_bench.harness.gate_items import test_gate  # noqa: F401
