//! Chunked uploads in the artifact store: each chunk received is kept by the backend as
//! `upload/<upload id>/<chunk id>` (a file moved there from the tmp area by one `rename(2)`, or
//! an object put whole, so a chunk is either whole or absent), its offset and size in the
//! database. The backend is what every machine shares, so the API process that receives a chunk
//! and the worker that commits the upload may run anywhere. Committing an upload walks the chunks
//! by offset ([`covering`]), copies the bytes that cover `0 .. size` once into a local temp file
//! while hashing them ([`ArtifactStorage::assemble_upload`]), and the caller adopts that file like
//! any download; then the upload's chunks go ([`ArtifactStorage::remove_upload`]).

use std::io;
use std::path::PathBuf;
use std::time::SystemTime;

use futures::StreamExt;
use sha2::{Digest, Sha256};
use tempfile::TempPath;
use tokio::io::AsyncWriteExt;
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
    /// Stores a received chunk (a temp file of the tmp area, `size` bytes) as chunk `chunk` of
    /// upload `upload`, in the backend.
    pub async fn adopt_chunk(
        &self,
        upload: Uuid,
        chunk: Uuid,
        temp: TempPath,
        size: u64,
    ) -> Result<(), StorageError> {
        self.backend().save_chunk(upload, chunk, temp, size).await
    }

    /// Removes one chunk (a chunk whose row could not be written).
    pub async fn remove_chunk(&self, upload: Uuid, chunk: Uuid) -> Result<(), StorageError> {
        self.backend().remove_chunk(upload, chunk).await
    }

    /// Removes every chunk of upload `id`; already gone is fine.
    pub async fn remove_upload(&self, id: Uuid) -> Result<(), StorageError> {
        self.backend().remove_upload(id).await
    }

    /// The uploads with chunks stored, none written since `before`: what an orphan sweep may
    /// remove when no row names them.
    pub async fn uploads_before(&self, before: SystemTime) -> Result<Vec<Uuid>, StorageError> {
        self.backend().uploads_before(before).await
    }

    /// Copies `pieces` of upload `upload`'s chunks, in order, into a new temp file of the tmp
    /// area while hashing them (each piece one ranged read of its chunk, streamed).
    pub async fn assemble_upload(
        &self,
        upload: Uuid,
        pieces: &[Piece],
    ) -> Result<Assembled, StorageError> {
        let (file, temp) = tempfile::Builder::new()
            .prefix(".upload-")
            .tempfile_in(self.tmp_dir())
            .map_err(io_err(self.tmp_dir()))?
            .into_parts();
        let mut out = tokio::io::BufWriter::with_capacity(1 << 20, tokio::fs::File::from_std(file));
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        for piece in pieces {
            let range = piece.skip..piece.skip + piece.len;
            let mut bytes = self
                .backend()
                .read_chunk(upload, piece.chunk, range)
                .await?;
            let mut got = 0u64;
            while let Some(b) = bytes.next().await {
                let b = b?;
                hasher.update(&b);
                out.write_all(&b).await.map_err(io_err(&temp))?;
                got += b.len() as u64;
            }
            if got != piece.len {
                return Err(StorageError::Io {
                    path: PathBuf::from(super::chunk_key(upload, piece.chunk)),
                    source: io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("upload chunk gave {got} bytes of {}", piece.len),
                    ),
                });
            }
            size += got;
        }
        out.flush().await.map_err(io_err(&temp))?;
        Ok(Assembled {
            temp,
            size,
            sha256: hex::encode(hasher.finalize()),
        })
    }
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

    #[tokio::test]
    async fn assemble_concatenates_and_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let st = ArtifactStorage::open(dir.path()).unwrap();
        let up = Uuid::new_v4();
        let (a, b) = (chunk(3, 3), chunk(0, 3));
        for (c, bytes) in [(&a, b"def"), (&b, b"abc")] {
            let mut t = st.temp_file().unwrap();
            std::io::Write::write_all(&mut t, bytes).unwrap();
            st.adopt_chunk(up, c.id, t.into_temp_path(), 3)
                .await
                .unwrap();
        }
        let upload_dir = dir.path().join("upload").join(up.to_string());
        assert_eq!(std::fs::read_dir(&upload_dir).unwrap().count(), 2);
        let plan = covering(6, &[a, b]).unwrap();
        let out = st.assemble_upload(up, &plan).await.unwrap();
        assert_eq!(std::fs::read(&out.temp).unwrap(), b"abcdef");
        assert_eq!(out.sha256, hex::encode(Sha256::digest(b"abcdef")));
        st.remove_upload(up).await.unwrap();
        assert!(!upload_dir.exists());
        st.remove_upload(up).await.expect("already gone is fine");
    }
}
