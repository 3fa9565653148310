"""The app database: versioned migrations and the connection helpers around them."""
