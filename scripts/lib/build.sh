# Sourced by scripts: builds the workspace once, with one feature set for every script.
# Binaries and tests are built in one invocation because Cargo unifies the features of
# dev-dependencies (proptest, reqwest) only when tests are in the build: `cargo build --bins`
# alone resolves tower, getrandom and friends differently and rebuilds most of the tree, and
# `-p <crate>` differs again. Every script calls this, so a second call costs a fingerprint check.
build_workspace() {
    cargo build --quiet --workspace --bins --tests
}
