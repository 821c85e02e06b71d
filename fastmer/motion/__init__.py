"""Motion fields between frames: optical flow, its file formats (:mod:`fastmer.motion.flo`) and derived features.

The representations of the MER papers (phase flows, COF, MM-COF, dynamic images, MESTI) are in
:mod:`fastmer.motion.representations` (flow-based, and the registry) and
:mod:`fastmer.motion.dynamic` (rank pooling of clips).
"""
