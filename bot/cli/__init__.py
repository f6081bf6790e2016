"""`aiops-bot`: the command line (`main`) and its subcommands that are more than a few
lines (`console`, `compliance`, `digest`)."""
