"""Archive jobs: many units (videos) run in this process or on Ray workers, resumable, nothing lost or twice.

``runner`` schedules units of a registered job kind (``@register_job``); ``predict`` and ``evaluation`` are the
job kinds of ``scopeseg predict`` on a folder of videos and ``scopeseg evaluate ... runner=ray``.
"""
