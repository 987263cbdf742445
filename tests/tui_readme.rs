//! The README's key table is the one the key map generates (as the help overlay and the
//! footer are): a binding changed without the README fails here, printing the new table.

#[test]
fn readme_key_table_is_the_key_map() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let table = qtune::tui::keymap::markdown_table();
    assert!(
        readme.contains(&table),
        "README.md's key table is out of date; put this under \"## The terminal UI\":\n\n{table}"
    );
}
