"""The ``report`` command's figures: what they plot (:mod:`.series`) and how (:mod:`.figures`).

Only :mod:`.figures` imports matplotlib (the ``.[plot]`` extra); :mod:`.series` is numpy.
"""
