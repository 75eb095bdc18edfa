"""deploy/ in front of real processes: nginx, systemd units (make test-deploy)."""
