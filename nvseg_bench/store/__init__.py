"""The cache root on disk: its size limit, least-recently-used eviction and the holds of running phases,
the digest memo, and atomic file writes. Shared by the preprocessing cache, the audit and evaluation
memos and the harness's run cache.
"""
