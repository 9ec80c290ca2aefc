"""What the caller asked for and whether the data can be used: the request, the preset, the resolved
values (each with its source), the data contract, the dataset audit, the label mapping and the anatomy
plausibility table. Everything here runs before a phase and refuses bad input with exit 2.
"""
