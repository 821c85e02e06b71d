"""fastmer: fast, reproducible facial micro-expression recognition.

The package follows the data's path: ``decode`` → ``face`` → ``phases`` → ``motion``
→ ``store`` → ``models``/``train`` → ``engine``. Heavy modules (torch, OpenCV) are
imported by the subpackages that need them, never here, so ``fastmer --help`` is instant.
"""

__version__ = "0.1.0"
