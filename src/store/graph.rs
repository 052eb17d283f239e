//! The connection graph in PostgreSQL and each user's adjacency set in Redis.
