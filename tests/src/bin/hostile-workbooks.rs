//! Writes the corpus of hostile workbooks (see `invite_tests::hostile`) to a folder:
//! `cargo run -p invite-tests --bin hostile-workbooks -- DIR`.

use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let dir: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .ok_or_else(|| anyhow::anyhow!("usage: hostile-workbooks DIR"))?;
    std::fs::create_dir_all(&dir)?;
    for file in invite_tests::hostile::corpus() {
        let path = dir.join(file.name);
        std::fs::write(&path, &file.bytes)?;
        println!("{:>10} bytes  {}", file.bytes.len(), path.display());
    }
    Ok(())
}
