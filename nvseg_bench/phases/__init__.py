"""The phases: each step is one `python -m monai.bundle run` child process (forked from a warm-start server
when it can be), its log parsed into a trace, its GPU sampled; a kept evaluation stands in for a repeat.
"""
