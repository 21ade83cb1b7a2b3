"""DNS wire format: parsing queries and building answers straight on bytes."""
