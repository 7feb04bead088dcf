"""Product carbon footprints from activity data and versioned emission factor tables (pure)."""
