//! The shell blocks of `docs/*.md`, held to the rule the README's walkthrough follows
//! (`scripts/readme.sh` runs every block of the README after its first): a block a user would run
//! is run here, from the repository root; a block that cannot run on a test machine says so on its
//! first line (`# not run by the tests: WHY`) and must still be valid shell (`bash -n`).

use std::process::Command;

use kafka_backup_testkit::repo_root;

const NOT_RUN: &str = "# not run by the tests:";

/// The ```bash blocks of `text`, each with the line it starts on.
fn bash_blocks(text: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (index, line) in text.lines().enumerate() {
        match (&mut current, line) {
            (None, "```bash") => current = Some((index + 1, String::new())),
            (Some(_), "```") => blocks.push(current.take().unwrap()),
            (Some((_, body)), line) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[test]
fn every_shell_block_of_the_docs_runs_or_says_why_it_cannot() {
    let mut seen = 0;
    for entry in std::fs::read_dir(repo_root().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|extension| extension != "md") {
            continue;
        }
        for (line, block) in bash_blocks(&std::fs::read_to_string(&path).unwrap()) {
            seen += 1;
            let place = format!("{}:{line}", path.display());
            let first = block.lines().next().unwrap_or_default();
            let runs = match first.strip_prefix(NOT_RUN) {
                Some(why) => {
                    assert!(why.trim().len() > 10, "{place}: say why the block cannot run here");
                    false
                }
                None => true,
            };
            let what = if runs { "run" } else { "parse" };
            let mut command = Command::new("bash");
            let flags: &[&str] = if runs { &["-euo", "pipefail", "-c"] } else { &["-n", "-c"] };
            command.args(flags).arg(&block);
            let output = command.current_dir(repo_root()).output().unwrap();
            assert!(
                output.status.success(),
                "{place}: the block does not {what}:\n{block}\n{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
    assert!(seen >= 4, "{seen} blocks found in docs/");
}

#[test]
fn blocks_are_found_with_their_lines() {
    let text = "# T\n```bash\necho a\n```\ntext\n```yaml\nk: v\n```\n```bash\n# not run by the tests: why\nx\n```\n";
    assert_eq!(
        bash_blocks(text),
        vec![(2, "echo a\n".to_string()), (9, "# not run by the tests: why\nx\n".to_string())]
    );
}
