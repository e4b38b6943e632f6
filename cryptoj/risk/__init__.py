"""Pure risk maths: volatility, correlation, dynamic caps and the graduated risk level."""
