"""Training: the loop (:mod:`.loop`: :func:`fit`, :func:`evaluate`, one epoch's batches) and
the runs (:mod:`.runs`: configurations, checkpoints that survive interruption, resuming,
several processes through DDP). Their public names are :mod:`gridconv.train`'s.
"""
