"""The kernel every layer stands on: the store and its schema, located YAML errors, durations
and log redaction. It imports nothing from the project, so any package may use it."""
