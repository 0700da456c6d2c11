"""Policy scenarios: YAML files run through the real pipeline with their exact expected ledger."""
