"""What people read: explain, the daily report and its charts, day summaries, the analysts' published copy."""
