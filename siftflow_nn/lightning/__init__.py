"""Lightning pieces and their data: flow training, dataset extraction, and the extraction's reader.

Importing this package needs no Lightning; ``training`` and ``extraction`` do (the ``lightning``
extra), ``reader`` does not.
"""
