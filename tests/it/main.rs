//! All integration tests, in one test binary: the real server on 127.0.0.1:0 with a fresh PKI
//! per test, real TLS clients presenting real certificates, a real SQLite journal (and a real
//! PostgreSQL cluster per test where the journal is shared by replicas).

mod admin;
mod catalog;
mod cli;
mod contracts;
mod core;
mod dashboard;
mod dotnet;
mod health;
mod java;
mod journal;
mod onboarding;
mod pg;
mod replicas;
mod scenarios;
mod served;
mod stores;
mod suites;
mod support;
mod verify;
mod welcome;
mod wsb;
mod wsb_dashboard;
mod wsb_served;
