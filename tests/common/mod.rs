//! Shared test helpers: a real HTTP fixture server with fault injection, and fresh databases
//! on every configured backend.
#![allow(dead_code)]

pub mod app;
pub mod db;
pub mod scripts;
pub mod server;
