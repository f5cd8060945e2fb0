"""Generated Python code for the pricing.v1 wire contract (regenerate with `make proto`)."""
