//! Rebuilds the crate when a migration is added or changed: `embed_migrations!` reads the
//! migration folders at compile time, and Cargo would not otherwise notice a new one.

fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
