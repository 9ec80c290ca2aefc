"""The plan: the resources a run asks for (patch, workers, processes, precision, sliding-window batch),
each with one line that says why, from the resolved values, this machine (GPUs, RAM, CPUs), the
network's grid, the phase interpreter's version pins and a SLURM job's variables.
"""
