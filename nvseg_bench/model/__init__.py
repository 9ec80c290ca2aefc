"""The model a run starts from: the pretrained weights (a local file or the hub), the bundle and the proof
of where it came from, and checkpoints read without torch (tensor layout, comparison).
"""
