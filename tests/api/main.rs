//! Black-box API tests: each test starts the real server on port 0 with its own PostgreSQL
//! database and its own Redis key prefix (see `helpers`).

mod admin;
mod auth;
mod authz;
mod checkins;
mod connections;
mod console;
mod contract;
mod events;
mod helpers;
mod index;
mod limits;
mod linkedin;
mod nearby;
mod notify;
mod ops;
mod profiles;
mod push;
mod reconcile;
mod revision2;
mod shares;
mod standins;
mod stream;
mod trips;
