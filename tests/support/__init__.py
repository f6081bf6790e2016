"""Helpers the tests share (and the benchmarks import): Slack's wire format (`wire`,
`slack_wire`), a runtime on a real database with a controllable clock and a Slack stub
(`harness`), the local PostgreSQL (`pg`), ports and processes (`processes`), and local
fakes of Google's servers (`fakes`). Importing this package imports nothing else."""
