"""output.json: the document assembled from a prepared run, its phases, evidence and decision; checked
against this project's schema and the peer skill's restatement, then written.
"""
