"""Lightning pieces and their data: flow training, dataset extraction, and the extraction's reader.

Importing this package needs no Lightning; ``training`` and ``extraction`` do (the ``lightning``
extra), ``reader`` does not.
"""

# Here, not in ``extraction``: the command line shows it in its help without importing Lightning.
DEFAULT_MAX_PIXELS = 25_000_000  # a 25 MP photo: 3.2 GB of uint8 descriptors at step 1
