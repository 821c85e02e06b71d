"""Where the extraction pipeline's stages (:mod:`fastmer.pipeline`) run: ``local`` threads
(:mod:`fastmer.executors.local`) or Ray Data (:mod:`fastmer.executors.ray`), one machine or
a cluster. Both yield the same results, in corpus order, to :func:`fastmer.extract.extract`
(which writes the same store) and :func:`fastmer.engine.score.score_clips` (which scores them).

The layers import one way: :mod:`fastmer.pipeline` <- the executors <- :mod:`fastmer.extract`
and :mod:`fastmer.engine.score` (``tests/test_import_graph.py`` keeps it so)."""
