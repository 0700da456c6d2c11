"""Configuration: settings (dunning.yaml), the policy file's model and its diff, the input tables' schema."""
