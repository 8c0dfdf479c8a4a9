"""Adapters: the database, email, SMS and webhook implementations of the ports."""
