"""`aiops-bot serve`'s processes: the server that acks (`server`), the command workers
(`workers`) and the scheduler process (`scheduler_process`)."""
