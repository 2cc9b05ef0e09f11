"""Signals of the training app, for apps that act on its outcomes without training importing them.

`run_succeeded` (kwarg `run`, the TrainingRun) is sent once, when a run is recorded as succeeded by
the process that trained it (`services._finish`); `evaluation` evaluates the new model on it.
Receivers run in the training process: keep them short (enqueue a job) and raise nothing.
"""

from django.dispatch import Signal

run_succeeded = Signal()
