"""The kernel every layer stands on: the store and its schema, located YAML errors, durations,
log redaction and the strict base of configuration sections. It imports nothing from the
project, so any package may use it."""
