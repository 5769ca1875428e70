"""maker's built-in tasks, installed as the ``maker_tasks`` package.

They are written only against maker's public API, as any user's task would be, and register
under the ``maker.tasks`` entry-point group.
"""
