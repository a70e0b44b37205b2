"""python -m nano_banana.cli (and accelerate launch -m nano_banana.cli ...)."""

from . import main

main()
