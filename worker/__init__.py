"""The GPU worker: Celery app, tasks, the job runner, its hooks and the lease reaper."""
