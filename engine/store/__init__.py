"""The event store: schema, migrations, the batching recorder and the read queries."""
