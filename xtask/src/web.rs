//! `cargo xtask web`: builds the web app into `dist/` with Trunk and precompresses it.
//!
//! Every file gets `.br` (brotli, quality 11) and `.gz` (gzip, level 9) siblings so the
//! server can send the smallest encoding the browser accepts without compressing on
//! each request. The originals stay for clients that accept neither.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use flate2::write::GzEncoder;

use crate::Ctx;

const BROTLI_QUALITY: u32 = 11;
/// Brotli's window: 2^22 bytes (4 MiB), larger than any file we ship.
const BROTLI_LG_WINDOW: u32 = 22;
const GZIP_LEVEL: u32 = 9;

/// Builds `dist/` (Trunk reads `Trunk.toml` and `index.html` in the workspace root) and
/// writes the compressed copies. Expects `setup` to have run.
pub(crate) fn build(ctx: &Ctx) -> Result<()> {
    ctx.run(ctx.cmd("trunk").args(["build", "--release"]))
        .context(
            "`trunk build --release` failed: see the output above (if a tool is missing or the \
         wrong version, run `cargo xtask setup`)",
        )?;

    let dist = ctx.root.join("dist");
    let mut files = Vec::new();
    collect_files(&dist, &mut files)?;
    files.sort();

    let mut rows = Vec::new();
    for file in &files {
        let raw = fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        let gz = gzip_compress(&raw)?;
        let br = brotli_compress(&raw)?;
        write_sibling(file, "gz", &gz, raw.len())?;
        write_sibling(file, "br", &br, raw.len())?;
        let name = file
            .strip_prefix(&dist)
            .unwrap_or(file)
            .display()
            .to_string();
        rows.push(Row {
            name,
            raw: raw.len(),
            gz: gz.len(),
            br: br.len(),
        });
    }
    print_table(&rows);
    let brotli: usize = rows.iter().map(|r| r.br).sum();
    if brotli > BUDGET_BROTLI {
        bail!(
            "the web bundle is {} bytes with brotli, over its budget of {} bytes: \
             find what grew (`twiggy` on the .wasm helps) before raising the budget",
            thousands(brotli as u64),
            thousands(BUDGET_BROTLI as u64)
        );
    }
    println!(
        "within the budget: {} of {} bytes with brotli",
        thousands(brotli as u64),
        thousands(BUDGET_BROTLI as u64)
    );
    Ok(())
}

/// What a first visit may download, compressed: the whole of `dist/` with brotli.
/// Raised from 250 KB for notifications (issue 13): the bell, its inbox, the room and
/// quiet-hours settings and the Web Push glue took the bundle from about 248 KB to
/// 278 KB (the WebAssembly from 814 to 905 KB raw, nearly all of it the new
/// components' view code). Raised again for the conversation (issue 14): actions on a
/// message, the reaction picker and chips, editing in place, replies and their quotes,
/// and the reducer behind them took it from about 281 KB to 307 KB (the WebAssembly
/// from 924 to 1,010 KB raw; 314 KB before the views were trimmed of reactive
/// closures, keyed lists and memos they did not need). Raised by 2 KB for big rooms
/// (issue 15): decoding the `members` answer and `joined.next`, the reducer's paging
/// and the member list's "Show more" took it from about 308 to 310 KB (the WebAssembly
/// from 1,011 to 1,021 KB raw). Raised by 3.8 KB for the SSE fallback (issue 16), what
/// it measured: the EventSource and posting carrier, the choice of transport, the
/// probes and the badge took it from about 310.0 to 313.8 KB (the WebAssembly from
/// 1,021 to 1,034 KB raw; 314.9 KB before the named events were read without serde
/// and the timers folded into the clock's tick).
const BUDGET_BROTLI: usize = 314_800;

struct Row {
    name: String,
    raw: usize,
    gz: usize,
    br: usize,
}

/// Every file under `dir` except compressed copies from an earlier run.
fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = fs::read_dir(dir).with_context(|| {
        format!(
            "cannot list {} (did `trunk build` write it?)",
            dir.display()
        )
    })?;
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            collect_files(&path, out)?;
        } else if !matches!(path.extension().and_then(|e| e.to_str()), Some("br" | "gz")) {
            out.push(path);
        }
    }
    Ok(())
}

fn gzip_compress(data: &[u8]) -> Result<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::new(GZIP_LEVEL));
    encoder.write_all(data)?;
    Ok(encoder.finish()?)
}

fn brotli_compress(data: &[u8]) -> Result<Vec<u8>> {
    let mut encoder =
        brotli::CompressorWriter::new(Vec::new(), 64 * 1024, BROTLI_QUALITY, BROTLI_LG_WINDOW);
    encoder.write_all(data)?;
    encoder.flush()?;
    Ok(encoder.into_inner())
}

/// Writes a compressed copy only when it is smaller than the original (tiny files grow
/// when compressed), removing a stale copy otherwise, so the server never sends more
/// bytes than the plain file.
fn write_sibling(file: &Path, ext: &str, data: &[u8], raw_len: usize) -> Result<()> {
    let mut name = file.as_os_str().to_owned();
    name.push(".");
    name.push(ext);
    let path = PathBuf::from(name);
    if data.len() >= raw_len {
        return match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("cannot remove {}", path.display()))
            }
            _ => Ok(()),
        };
    }
    fs::write(&path, data).with_context(|| format!("cannot write {}", path.display()))
}

fn print_table(rows: &[Row]) {
    let shown: Vec<&Row> = rows
        .iter()
        .filter(|r| {
            [".wasm", ".js", ".css"]
                .iter()
                .any(|ext| r.name.ends_with(ext))
        })
        .collect();
    let total = Row {
        name: format!("total (all {} files in dist/)", rows.len()),
        raw: rows.iter().map(|r| r.raw).sum(),
        gz: rows.iter().map(|r| r.gz).sum(),
        br: rows.iter().map(|r| r.br).sum(),
    };
    let width = shown
        .iter()
        .map(|r| r.name.len())
        .chain([total.name.len()])
        .max()
        .unwrap_or(0);
    let line = |name: &str, raw: &str, gz: &str, br: &str| {
        println!("  {name:<width$}  {raw:>11}  {gz:>11}  {br:>11}");
    };
    println!();
    line("file", "raw", "gzip", "brotli");
    for row in shown.iter().copied().chain([&total]) {
        line(
            &row.name,
            &thousands(row.raw as u64),
            &thousands(row.gz as u64),
            &thousands(row.br as u64),
        );
    }
    println!();
}

/// `1234567` -> `1,234,567`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let groups: Vec<&str> = digits
        .as_bytes()
        .rchunks(3)
        .rev()
        .map(|group| std::str::from_utf8(group).expect("ASCII digits"))
        .collect();
    groups.join(",")
}

#[cfg(test)]
mod tests {
    use super::{brotli_compress, gzip_compress, thousands};

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(158_933), "158,933");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn compressed_copies_round_trip() {
        use std::io::Read as _;
        let data = b"hello huddle ".repeat(500);

        let mut unzipped = Vec::new();
        flate2::read::GzDecoder::new(&gzip_compress(&data).unwrap()[..])
            .read_to_end(&mut unzipped)
            .unwrap();
        assert_eq!(unzipped, data);

        let mut unbrotlied = Vec::new();
        brotli::Decompressor::new(&brotli_compress(&data).unwrap()[..], 4096)
            .read_to_end(&mut unbrotlied)
            .unwrap();
        assert_eq!(unbrotlied, data);
    }
}
