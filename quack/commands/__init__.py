"""The subcommands of the `quack` command line, one module per part of the loop."""
