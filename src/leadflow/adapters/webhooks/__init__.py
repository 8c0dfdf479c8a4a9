"""Sending sales handoff webhooks over HTTP, and the rules on where they may go."""
