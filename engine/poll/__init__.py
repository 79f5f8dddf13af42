"""Scheduled polling: schedules, cursors and one module per source kind (``http``, ``files``).

`compile.compile_poll` turns a flow's ``trigger.poll`` into a `CompiledPoll` when the flow is
loaded; `job.PollJob` runs one poll of it (take records in through `App.accept`, then commit the
cursor); `engine.scheduler` decides when.
"""
