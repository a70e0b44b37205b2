"""``nano-banana serve``: engines kept warm in a worker pool, and the client the CLI uses.

``server`` runs a ``WorkerPool`` behind a local socket; ``client`` finds a running
server that serves the model a command asks for and generates through it, so a
one-image command costs a round trip instead of loading torch, diffusers and the model.
``address`` is where they meet (a per-user folder) and how a client proves it may connect.
"""
