"""Test harness: real Mosquitto and PostgreSQL, waiting with deadlines, edge processes."""
