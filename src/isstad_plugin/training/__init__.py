"""What keeps a fit safe and fast: checkpoints, the divergence guard, exact resumes, precision, engine behaviour."""
