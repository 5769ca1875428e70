"""``maker serve``: maker as an HTTP job service over the engine and its journals.

- ``jobs``: what a job is (``JobSpec``, validated by pydantic like the CLI's settings), where it
  lives (a folder per job under the service's data folder: its spec, state and journal), and the
  ``JobService`` that runs jobs, cancels them and resumes unfinished ones after a restart.
- ``live``: ``LiveView``, the observer that keeps a running job's numbers for its watchers.
- ``http``: the aiohttp application: routes, the token check, clear 4xx errors, server-sent events.
"""
