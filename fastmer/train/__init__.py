"""Training and evaluation: protocols (LOSO), MEGC metrics, the trainer and ``fastmer train``'s run."""
