"""The tracker, the login page and the dashboard in Chromium, against a real server."""
