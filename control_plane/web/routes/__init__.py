"""The console's own pages: login and language, home, fleet."""
