"""The read-only answers: status, changes, audit, dossier, help."""
