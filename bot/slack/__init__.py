"""The Slack edge: Bolt listeners, Block Kit rendering, the Web API notifier, the manifest."""
