"""HTTP applications behind the Knative functions (each function folder wraps one of these)."""
