"""haul: a self-hosted Temporal platform in one Python distribution."""
