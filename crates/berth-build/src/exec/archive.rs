//! ADD of a local archive: recognise a tar (plain, gzip, bzip2, xz) and re-emit its entries
//! under the destination in the step's layer tar. Archive entries are hostile: names are cleaned,
//! a name or hard link that climbs out of the destination is refused (Docker's "breakout"), and
//! nothing below a symlink the archive itself planted is accepted. Nothing is unpacked on disk.

use std::collections::HashSet;
use std::io::{self, BufReader, Read, Write};
use std::path::Path;

use super::fsroot::{clean_rel, join_rel, open_nofollow};
use super::StepError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
    Bzip2,
    Xz,
}

fn sniff(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(b"BZh") {
        Compression::Bzip2
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Compression::Xz
    } else {
        Compression::None
    }
}

/// The decompressed stream of an archive file.
fn open(path: &Path) -> Result<Box<dyn Read>, StepError> {
    let mut f = open_nofollow(path)?;
    let mut head = [0u8; 6];
    let n = read_full(&mut f, &mut head).map_err(|e| io_err(path, e))?;
    let f = open_nofollow(path)?;
    let inner = BufReader::with_capacity(256 * 1024, f);
    Ok(match sniff(&head[..n]) {
        Compression::None => Box::new(inner),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(inner)),
        Compression::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(inner)),
        Compression::Xz => Box::new(lzma_rust2::XzReader::new(inner, true)),
    })
}

fn io_err(path: &Path, e: io::Error) -> StepError {
    StepError::Io(format!("{}: {e}", path.display()))
}

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Whether the file is a tar archive (possibly compressed): its first (decompressed) block is a
/// tar header with a valid checksum. Anything else is copied as a plain file, as Docker does.
pub(crate) fn is_archive(path: &Path) -> bool {
    let Ok(mut r) = open(path) else {
        return false;
    };
    let mut block = [0u8; 512];
    match read_full(&mut r, &mut block) {
        Ok(512) => header_checksum_ok(&block),
        _ => false,
    }
}

fn header_checksum_ok(block: &[u8; 512]) -> bool {
    if block.iter().all(|&b| b == 0) {
        return false;
    }
    let field = &block[148..156];
    let text: String = field
        .iter()
        .take_while(|&&b| b != 0)
        .map(|&b| b as char)
        .collect();
    let Ok(want) = u32::from_str_radix(text.trim(), 8) else {
        return false;
    };
    let sum: u32 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(b)
            }
        })
        .sum();
    sum == want
}

/// Cleans an archive entry name relative to the destination; `None` if it climbs out.
fn sanitize(name: &str) -> Option<String> {
    clean_rel(name.trim_start_matches('/'))
}

fn breakout(name: &str) -> StepError {
    StepError::Invalid(format!(
        "archive entry {name:?} is outside of the destination directory (refused)"
    ))
}

/// Re-emits the archive's entries below `dest` (relative to the image root) into `builder`.
/// `owner` replaces the entries' uid/gid (ADD --chown), `chmod` their permission bits.
pub(crate) fn append_archive<W: Write>(
    builder: &mut tar::Builder<W>,
    archive: &Path,
    dest: &str,
    owner: Option<(u32, u32)>,
    chmod: Option<u32>,
) -> Result<(), StepError> {
    let reader = open(archive)?;
    let mut ar = tar::Archive::new(reader);
    let entries = ar.entries().map_err(|e| io_err(archive, e))?;
    let mut symlinks: HashSet<String> = HashSet::new();
    for entry in entries {
        let mut entry = entry.map_err(|e| io_err(archive, e))?;
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader
                | tar::EntryType::XHeader
                | tar::EntryType::GNULongName
                | tar::EntryType::GNULongLink
        ) {
            continue;
        }
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let rel = sanitize(&raw).ok_or_else(|| breakout(&raw))?;
        if rel.is_empty() {
            if kind.is_dir() {
                continue;
            }
            return Err(breakout(&raw));
        }
        // Below a symlink planted by this archive: the extraction would follow it.
        let mut anc = rel.as_str();
        while let Some((parent, _)) = anc.rsplit_once('/') {
            if symlinks.contains(parent) {
                return Err(StepError::Invalid(format!(
                    "archive entry {raw:?} is below the symlink {parent:?} of the same archive (refused)"
                )));
            }
            anc = parent;
        }
        let src = entry.header();
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        let mode = src.mode().unwrap_or(0o644) & 0o7777;
        h.set_mode(match chmod {
            Some(m) => m,
            None => mode,
        });
        let (uid, gid) = match owner {
            Some(o) => o,
            None => (src.uid().unwrap_or(0) as u32, src.gid().unwrap_or(0) as u32),
        };
        h.set_uid(u64::from(uid));
        h.set_gid(u64::from(gid));
        h.set_mtime(src.mtime().unwrap_or(0));
        if let (Ok(Some(maj)), Ok(Some(min))) = (src.device_major(), src.device_minor()) {
            let _ = h.set_device_major(maj);
            let _ = h.set_device_minor(min);
        }
        let path = join_rel(dest, &rel);
        let werr = |e: io::Error| StepError::Io(format!("write layer: {e}"));
        match kind {
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                h.set_size(0);
                builder.append_link(&mut h, &path, &target).map_err(werr)?;
                symlinks.insert(rel);
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                let t = sanitize(&target)
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| breakout(&target))?;
                h.set_size(0);
                builder
                    .append_link(&mut h, &path, join_rel(dest, &t))
                    .map_err(werr)?;
            }
            tar::EntryType::Directory => {
                h.set_size(0);
                builder
                    .append_data(&mut h, format!("{path}/"), io::empty())
                    .map_err(werr)?;
                symlinks.remove(&rel);
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                h.set_size(0);
                builder
                    .append_data(&mut h, &path, io::empty())
                    .map_err(werr)?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                h.set_entry_type(tar::EntryType::Regular);
                let size = entry.size();
                h.set_size(size);
                builder
                    .append_data(&mut h, &path, &mut entry)
                    .map_err(werr)?;
                symlinks.remove(&rel);
            }
            // Sparse files and vendor extensions: not produced by the usual tools; skipped.
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_names() {
        assert_eq!(sanitize("/etc/passwd").as_deref(), Some("etc/passwd"));
        assert_eq!(sanitize("./a/../b").as_deref(), Some("b"));
        assert_eq!(sanitize("../x"), None);
        assert_eq!(sanitize("a/../../x"), None);
    }

    #[test]
    fn recognises_tars_not_text() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("t.txt");
        std::fs::write(&text, "hello").unwrap();
        assert!(!is_archive(&text));
        let tarp = dir.path().join("a.tar");
        let mut b = tar::Builder::new(std::fs::File::create(&tarp).unwrap());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        b.append_data(&mut h, "f", &b"hi"[..]).unwrap();
        b.into_inner().unwrap();
        assert!(is_archive(&tarp));
        let gz = dir.path().join("a.tar.gz");
        let mut enc = flate2::write::GzEncoder::new(
            std::fs::File::create(&gz).unwrap(),
            flate2::Compression::fast(),
        );
        enc.write_all(&std::fs::read(&tarp).unwrap()).unwrap();
        enc.finish().unwrap();
        assert!(is_archive(&gz));
        let bz = dir.path().join("a.tar.bz2");
        let mut enc = bzip2::write::BzEncoder::new(
            std::fs::File::create(&bz).unwrap(),
            bzip2::Compression::fast(),
        );
        enc.write_all(&std::fs::read(&tarp).unwrap()).unwrap();
        enc.finish().unwrap();
        assert!(is_archive(&bz));
    }
}
