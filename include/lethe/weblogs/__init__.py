"""Web-server access logs: truncating the client IP addresses they hold (rule L1)."""
