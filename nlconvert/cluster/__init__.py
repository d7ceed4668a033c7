"""``evaluate`` and ``features`` past one machine, on a Ray cluster (Ray Data).

:mod:`.layout` connects to a cluster and sizes the job (actors, CPUs, GPUs) so decoding can
always run; :mod:`.stages` holds what runs on the workers (decoding tasks, the model actor);
:mod:`.jobs` builds the Ray Data pipeline and consumes its results on the driver, which alone
writes the results database or the feature files, exactly as a local run does.

Ray is an optional dependency (``pip install 'nlconvert[ray]'``); nothing here is imported by
a run without ``--ray``.
"""
