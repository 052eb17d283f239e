//! The connection graph: requests, connections, blocks, contact matching, the adjacency cache.
