"""`worker_tick`: sent by each job worker as it starts (`startup=True`) and every TASKS_HEARTBEAT_SECONDS.

Apps whose jobs keep domain rows of their own (a training run) end those a dead worker left behind
here, as the worker itself does for the framework's rows. Receivers run on the worker's heartbeat
thread: keep them short, and let them raise nothing they can handle.
"""

from django.dispatch import Signal

worker_tick = Signal()
