"""The market simulator: shoppers with known willingness to pay, scenarios, and policy comparisons
against the oracle (see docs/architecture.md)."""
