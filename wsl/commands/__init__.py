"""Commands defined once and registered in both tools (``wsl.utils.cli.GENERIC_COMMANDS``).

Each module has the interface of a tool's own command modules (``HELP``, ``add_arguments``, ``run``) and
reaches the tool's parts through ``args.tool`` (:class:`wsl.utils.cli.Tool`).
"""
