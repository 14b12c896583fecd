"""Approvals: a deployment that waits for a human (filled in by the approvals work)."""
