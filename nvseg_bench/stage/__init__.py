"""Staged configs: the override files a run writes under OUT/configs/ on top of the bundle's own configs
(recipe values, the preprocessing cache's PersistentDataset, resume's epoch saver). The bundle itself is
never written to.
"""
