"""A real Prefect server and process worker; the deploy/ files."""
