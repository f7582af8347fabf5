"""Job execution: the runner, one handler per job kind (worker/handlers.py) and the RQ worker process."""
