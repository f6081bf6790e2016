"""Pure logic, no server and no process: parsing, config, rendering, redaction, the
code's layout, and the benchmarks' code."""
