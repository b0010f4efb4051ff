"""The pure core of runpod-deploy: stack spec, state, observation, planner and plan.

Nothing in this package touches the network, a subprocess, the clock or the disk beyond reading
text it is handed; the import-linter contracts in pyproject.toml hold it to that.
"""
