"""The edge: Slack over HTTP and Socket Mode, `serve`'s processes, the command workers,
the console and the CLI as a person runs them."""
