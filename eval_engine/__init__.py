"""eval_engine: the trusted CPU verifier of nvseg-bench evidence packs.

It never imports nvseg_bench and recomputes what it checks with its own code. The verifier itself
(`python -m eval_engine.run_trusted`) is tracked as its own issue; this package holds its home.
"""
