"""Data files shipped with haul (price tables users update; see each file's source and date)."""
