"""Motion fields between frames: optical flow, its file formats (:mod:`fastmer.motion.flo`) and derived features."""
