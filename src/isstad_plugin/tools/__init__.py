"""The ``isstad`` command and the tools behind it: demo, benchmark, report, diagnose, predict."""
