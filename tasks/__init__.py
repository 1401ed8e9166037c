"""One module per pipeline stage: pure functions, plus a thin Prefect @task wrapper."""
