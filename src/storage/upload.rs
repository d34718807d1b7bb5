//! Chunked uploads in the artifact store: each chunk received is a file
//! `upload/<upload id>/<chunk id>` (moved there from the tmp area by one `rename(2)`, so a chunk
//! is either whole or absent), its offset and size in the database. Committing an upload walks
//! the chunks by offset ([`covering`]), copies the bytes that cover `0 .. size` once into a temp
//! file while hashing them ([`ArtifactStorage::assemble_upload`]), and the caller adopts that
//! file like any download. Everything here blocks: call it from `spawn_blocking`.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use tempfile::TempPath;
use uuid::Uuid;

use super::{io_err, ArtifactStorage, StorageError};
use crate::models::UploadChunk;

/// One piece of an assembly plan: `len` bytes of chunk `chunk`, from byte `skip` of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    pub chunk: Uuid,
    pub skip: u64,
    pub len: u64,
}

/// The pieces that cover bytes `0 .. size` from `chunks` (sorted by offset, overlaps allowed:
/// the earliest chunk that reaches a byte provides it), or the first byte no chunk covers.
pub fn covering(size: u64, chunks: &[UploadChunk]) -> Result<Vec<Piece>, u64> {
    let mut sorted: Vec<&UploadChunk> = chunks.iter().collect();
    sorted.sort_by_key(|c| c.offset);
    let mut pos = 0u64;
    let mut out = Vec::new();
    for c in sorted {
        if pos >= size {
            break;
        }
        let end = c.offset.saturating_add(c.size).min(size);
        if c.offset > pos {
            return Err(pos);
        }
        if end <= pos {
            continue;
        }
        out.push(Piece {
            chunk: c.id,
            skip: pos - c.offset,
            len: end - pos,
        });
        pos = end;
    }
    if pos < size {
        return Err(pos);
    }
    Ok(out)
}

/// An assembled upload: a temp file in the tmp area and its digest.
#[derive(Debug)]
pub struct Assembled {
    pub temp: TempPath,
    pub size: u64,
    pub sha256: String,
}

impl ArtifactStorage {
    /// The directory of upload `id`'s chunks.
    pub fn upload_dir(&self, id: Uuid) -> PathBuf {
        self.root.join("upload").join(id.to_string())
    }

    /// Moves a received chunk (a temp file of the tmp area) to `upload/<upload>/<chunk>`.
    pub fn adopt_chunk(
        &self,
        upload: Uuid,
        chunk: Uuid,
        temp: TempPath,
    ) -> Result<(), StorageError> {
        let dir = self.upload_dir(upload);
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let dest = dir.join(chunk.to_string());
        temp.persist(&dest).map_err(|e| StorageError::Io {
            path: dest.clone(),
            source: e.error,
        })
    }

    /// Removes one chunk file (a chunk whose row could not be written).
    pub fn remove_chunk(&self, upload: Uuid, chunk: Uuid) -> Result<(), StorageError> {
        let path = self.upload_dir(upload).join(chunk.to_string());
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::Io { path, source: e }),
        }
    }

    /// Removes every chunk of upload `id`; already gone is fine.
    pub fn remove_upload(&self, id: Uuid) -> Result<(), StorageError> {
        let dir = self.upload_dir(id);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::Io {
                path: dir,
                source: e,
            }),
        }
    }

    /// The upload directories last modified before `before` (a directory's time moves when a
    /// chunk is added): what an orphan sweep may remove when no row names them.
    pub fn upload_dirs_before(&self, before: SystemTime) -> Result<Vec<Uuid>, StorageError> {
        let root = self.root.join("upload");
        let entries = match std::fs::read_dir(&root) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(StorageError::Io {
                    path: root,
                    source: e,
                })
            }
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err(&root))?;
            let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(|n| Uuid::parse_str(n).ok())
            else {
                continue;
            };
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() && meta.modified().is_ok_and(|m| m < before) {
                out.push(id);
            }
        }
        Ok(out)
    }

    /// Copies `pieces` of upload `upload`'s chunks, in order, into a new temp file while
    /// hashing them, 1 MiB at a time.
    pub fn assemble_upload(
        &self,
        upload: Uuid,
        pieces: &[Piece],
    ) -> Result<Assembled, StorageError> {
        let dir = self.upload_dir(upload);
        let mut out = tempfile::Builder::new()
            .prefix(".upload-")
            .tempfile_in(self.tmp_dir())
            .map_err(io_err(self.tmp_dir()))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut size = 0u64;
        for piece in pieces {
            let path = dir.join(piece.chunk.to_string());
            copy_piece(&path, piece, &mut buf, &mut hasher, out.as_file_mut())
                .map_err(io_err(&path))?;
            size += piece.len;
        }
        out.as_file_mut().flush().map_err(io_err(out.path()))?;
        Ok(Assembled {
            temp: out.into_temp_path(),
            size,
            sha256: hex::encode(hasher.finalize()),
        })
    }
}

/// Appends `piece.len` bytes of the file at `path`, from `piece.skip`, to `out` and `hasher`.
fn copy_piece(
    path: &Path,
    piece: &Piece,
    buf: &mut [u8],
    hasher: &mut Sha256,
    out: &mut std::fs::File,
) -> io::Result<()> {
    let mut file = std::fs::File::open(path)?;
    file.seek(SeekFrom::Start(piece.skip))?;
    let mut left = piece.len;
    while left > 0 {
        let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        let n = file.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "upload chunk shorter than recorded",
            ));
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])?;
        left -= n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(offset: u64, size: u64) -> UploadChunk {
        UploadChunk {
            id: Uuid::new_v4(),
            offset,
            size,
        }
    }

    #[test]
    fn covering_takes_chunks_in_offset_order_and_finds_gaps() {
        let a = chunk(0, 4);
        let b = chunk(4, 4);
        let c = chunk(2, 4); // overlaps both
        let plan = covering(8, &[b.clone(), c.clone(), a.clone()]).unwrap();
        assert_eq!(
            plan,
            vec![
                Piece {
                    chunk: a.id,
                    skip: 0,
                    len: 4
                },
                Piece {
                    chunk: c.id,
                    skip: 2,
                    len: 2
                },
                Piece {
                    chunk: b.id,
                    skip: 2,
                    len: 2
                },
            ]
        );
        assert_eq!(covering(8, std::slice::from_ref(&a)), Err(4));
        assert_eq!(covering(8, std::slice::from_ref(&b)), Err(0));
        assert_eq!(covering(0, &[]), Ok(vec![]));
    }

    #[test]
    fn assemble_concatenates_and_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let st = ArtifactStorage::open(dir.path()).unwrap();
        let up = Uuid::new_v4();
        let (a, b) = (chunk(3, 3), chunk(0, 3));
        for (c, bytes) in [(&a, b"def"), (&b, b"abc")] {
            let mut t = st.temp_file().unwrap();
            t.write_all(bytes).unwrap();
            st.adopt_chunk(up, c.id, t.into_temp_path()).unwrap();
        }
        let plan = covering(6, &[a, b]).unwrap();
        let out = st.assemble_upload(up, &plan).unwrap();
        assert_eq!(std::fs::read(&out.temp).unwrap(), b"abcdef");
        assert_eq!(out.sha256, hex::encode(Sha256::digest(b"abcdef")));
        st.remove_upload(up).unwrap();
        assert!(!st.upload_dir(up).exists());
    }
}
