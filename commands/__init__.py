"""The domain of aiops-bot: parse → plan → policy → execute. No Slack, no Google here."""
