"""Small shared utilities (threading setup, seeding)."""
