"""One module per subcommand of ``python -m launch``: ``command_parser`` (its flags) and ``*_command``.

Each ``*_command(args, session)`` only loads the settings, calls the plain typed function that
does the work (``train``, ``tune``, ``pipeline``, ``register``: tests call those directly) and
reports; a failure is raised as a :class:`~training.errors.UserError` and printed once by
:func:`launch.console.run`.
"""
