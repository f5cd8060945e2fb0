"""The market simulator (see its issue); empty until then."""
