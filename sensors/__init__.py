"""Jobs, schedules and sensors: what runs when."""
