"""The edge of aiops-bot: Slack, the console, the store, the scheduler and platform adapters."""
