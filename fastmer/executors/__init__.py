"""Where the extraction's compute stages run: ``local`` threads (:mod:`fastmer.extract`) or
Ray Data (:mod:`fastmer.executors.ray`), one machine or a cluster. Both write the same store."""
