"""Sub-commands of the ``nlconvert`` command line, one module each (see :mod:`nlconvert.cli`)."""
