"""What a sweep prints: one line per trial, the live progress line, the sweep's last line."""
