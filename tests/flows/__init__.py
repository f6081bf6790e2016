"""The product's flows through the domain service on the sandbox and a real database:
changes, policy, canaries, digests, the scheduler, the dossier."""
