"""The warehouse side shared by every stage that runs SQL: dialects, table naming, reading back."""
