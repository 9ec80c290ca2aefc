"""Evidence and decision: the numbers a run proves from its own files (checkpoint change, formal Dice per
case), paired gain statistics, the reference ranges it is held to, and which checkpoint to keep.
"""
