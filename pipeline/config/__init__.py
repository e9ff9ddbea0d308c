"""params.yaml: its sections (sections), their checks (validation), loading a file (loading)."""
