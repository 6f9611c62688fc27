//! `sqlx::migrate!` embeds the migrations at compile time but does not tell cargo to watch their
//! folder: a migration added after a build would be left out of the next one.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
