"""``evaluate`` and ``features`` past one machine, on a Ray cluster.

:mod:`.layout` connects to a cluster and sizes the job (actors, CPUs, GPUs) so decoding can
always run; :mod:`.stages` holds what runs on the workers (decoding tasks, the model actor);
:mod:`.faults` tells a lost node from a video that kills its process; :mod:`.dispatch` is
the driver's scheduler and retry policy; :mod:`.jobs` turns its outcomes into what a local
run writes (the results database or the feature files; the driver alone writes them).

Ray is an optional dependency (``pip install 'nlconvert[ray]'``); nothing here is imported by
a run without ``--ray``.
"""
