"""`python -m runpod_deploy` is `runpod-deploy`."""

from runpod_deploy.cli import main

main()
