"""Training: one Lightning loop (``loop``) and one task module per model family (``scopeseg train``).

Tasks register themselves with ``@register_task`` in their own module and are found, never listed here.
"""

from .loop import TASKS, Task, TrainerOptions, register_task, train

__all__ = ["TASKS", "Task", "TrainerOptions", "register_task", "train"]
